/**
 * The bytes of a journal record. A journal is a run of records written one
 * after another from byte 0; each is a header block and, for a pages
 * record, the pages it holds:
 *
 *     0  magic "FLTJRNL1"                         8 bytes
 *     8  kind: 1 pages, 2 commit                  u32
 *    12  page size                                u32
 *    16  count of pages (0 for a commit)          u32
 *    20  sequence number within the epoch         u32
 *    24  epoch: random, new at each reset         8 bytes
 *    32  CRC-32 of the whole record, this field 0 u32
 *    36  zero                                     u32
 *    40  page indexes, in data order              count × u64
 *        zeros up to a multiple of 4 KiB, so page data stays page-aligned
 *        then count × page size bytes of page data
 *
 * All integers little-endian. The CRC covers the data as well as the header,
 * so a record cut short or half on disk after a power loss is never taken
 * for a whole one; the epoch and sequence number keep a record left over
 * from before a reset from being taken for part of the current run.
 */
import { crc32 } from './crc32.js'

export const MAGIC = Buffer.from('FLTJRNL1', 'latin1')
export const EPOCH_BYTES = 8
const FIXED_BYTES = 40
const CRC_AT = 32
const BLOCK = 4096
const MAX_PAGE_SIZE = 2 ** 30

export type RecordKind = 'pages' | 'commit'
const KIND_CODE: Record<RecordKind, number> = { pages: 1, commit: 2 }

export interface RecordHeader {
  readonly kind: RecordKind
  readonly pageSize: number
  readonly sequence: number
  readonly epoch: Uint8Array
  /** Page indexes, one per page of data, in the order the data follows. */
  readonly indexes: readonly number[]
}

/** The fixed fields of a header block, before its indexes are read and its CRC checked. */
export interface RecordFields {
  readonly kind: RecordKind
  readonly pageSize: number
  readonly count: number
  readonly sequence: number
  readonly epoch: Buffer
  readonly crc: number
}

/** Bytes of the header block of a record of `count` pages. */
export function headerBytes(count: number): number {
  return Math.ceil((FIXED_BYTES + 8 * count) / BLOCK) * BLOCK
}

/** Bytes of a whole record of `count` pages. */
export function recordBytes(count: number, pageSize: number): number {
  return headerBytes(count) + count * pageSize
}

/** The smallest a record can be: what to read first to decode one. */
export const MIN_RECORD_BYTES = headerBytes(0)

/** A record's header block with its CRC, computed over the block and `pages` (one per index, each pageSize long). */
export function encodeHeader(header: RecordHeader, pages: readonly Uint8Array[]): Buffer {
  const { indexes } = header
  const block = Buffer.alloc(headerBytes(indexes.length))
  MAGIC.copy(block, 0)
  block.writeUInt32LE(KIND_CODE[header.kind], 8)
  block.writeUInt32LE(header.pageSize, 12)
  block.writeUInt32LE(indexes.length, 16)
  block.writeUInt32LE(header.sequence, 20)
  block.set(header.epoch.subarray(0, EPOCH_BYTES), 24)
  for (let i = 0; i < indexes.length; i++) {
    const index = indexes[i]!
    block.writeUInt32LE(index % 2 ** 32, FIXED_BYTES + 8 * i)
    block.writeUInt32LE(Math.floor(index / 2 ** 32), FIXED_BYTES + 8 * i + 4)
  }
  let crc = crc32(block)
  for (const page of pages) crc = crc32(page, crc)
  block.writeUInt32LE(crc, CRC_AT)
  return block
}

/** The fixed fields of what should be a header block (at least {@link MIN_RECORD_BYTES}), or undefined if they cannot be one. */
export function decodeFields(block: Buffer): RecordFields | undefined {
  if (block.byteLength < FIXED_BYTES || !block.subarray(0, MAGIC.byteLength).equals(MAGIC)) return undefined
  const code = block.readUInt32LE(8)
  const kind = code === KIND_CODE.pages ? 'pages' : code === KIND_CODE.commit ? 'commit' : undefined
  const pageSize = block.readUInt32LE(12)
  const count = block.readUInt32LE(16)
  if (kind === undefined || pageSize < BLOCK || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) return undefined
  if ((kind === 'commit') !== (count === 0)) return undefined
  return { kind, pageSize, count, sequence: block.readUInt32LE(20), epoch: Buffer.from(block.subarray(24, 24 + EPOCH_BYTES)), crc: block.readUInt32LE(CRC_AT) }
}

/** The page indexes of a whole header block of `count` pages, or undefined if one is past what a page index can be. */
export function decodeIndexes(block: Buffer, count: number): number[] | undefined {
  const indexes: number[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const high = block.readUInt32LE(FIXED_BYTES + 8 * i + 4)
    if (high >= 2 ** 21) return undefined
    indexes[i] = high * 2 ** 32 + block.readUInt32LE(FIXED_BYTES + 8 * i)
  }
  return indexes
}

/** The CRC of a whole header block as stored: computed with its CRC field zero. Continue it over the data. */
export function headerCrc(block: Buffer): number {
  const copy = Buffer.from(block)
  copy.writeUInt32LE(0, CRC_AT)
  return crc32(copy)
}
