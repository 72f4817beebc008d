/**
 * Reading a journal back. Records are taken in order from byte 0 while each
 * is whole (its CRC matches), of the first record's epoch and page size,
 * and numbered one after another; the first that is not ends the journal.
 * Of those, only the pages of records followed by a commit record count: a
 * record after the last commit belongs to a flush that never reached
 * sync(), so none of its pages was written in place and the data file still
 * holds whole pages of the flush before.
 */
import { fstatSync } from 'node:fs'
import { crc32 } from './crc32.js'
import { decodeFields, decodeIndexes, headerBytes, headerCrc, MIN_RECORD_BYTES } from './format.js'
import { readFully } from './io.js'
import { JournalPages } from './pages.js'

/** Bytes of page data read per CRC step. */
const CHUNK = 4 * 2 ** 20

export interface JournalScan {
  /** The pages of committed records, the newest copy of each; undefined when there are none. */
  readonly committed: JournalPages | undefined
  /** Whole records found, committed or not. */
  readonly records: number
}

export function scanJournal(fd: number): JournalScan {
  const size = fstatSync(fd).size
  const head = Buffer.alloc(MIN_RECORD_BYTES)
  let scratch: Buffer | undefined
  let at = 0
  let records = 0
  let first: { epoch: Buffer; pageSize: number } | undefined
  let uncommitted: Array<[index: number, offset: number]> = []
  let committed: JournalPages | undefined
  while (at + MIN_RECORD_BYTES <= size) {
    if (readFully(fd, head, 0, MIN_RECORD_BYTES, at) !== MIN_RECORD_BYTES) break
    const fields = decodeFields(head)
    if (fields === undefined || fields.sequence !== records) break
    if (first !== undefined && (!fields.epoch.equals(first.epoch) || fields.pageSize !== first.pageSize)) break
    const { count, pageSize } = fields
    const blockBytes = headerBytes(count)
    if (at + blockBytes + count * pageSize > size) break
    let block = head
    if (blockBytes > head.byteLength) {
      block = Buffer.alloc(blockBytes)
      if (readFully(fd, block, 0, blockBytes, at) !== blockBytes) break
    }
    const indexes = decodeIndexes(block, count)
    if (indexes === undefined) break
    let crc = headerCrc(block)
    const dataAt = at + blockBytes
    const dataBytes = count * pageSize
    if (scratch === undefined || scratch.byteLength < Math.min(CHUNK, dataBytes)) scratch = Buffer.allocUnsafeSlow(Math.min(CHUNK, dataBytes))
    let whole = true
    for (let done = 0; done < dataBytes; ) {
      const length = Math.min(CHUNK, dataBytes - done)
      if (readFully(fd, scratch, 0, length, dataAt + done) !== length) {
        whole = false
        break
      }
      crc = crc32(scratch.subarray(0, length), crc)
      done += length
    }
    if (!whole || crc !== fields.crc) break
    first ??= { epoch: fields.epoch, pageSize }
    if (fields.kind === 'pages') {
      for (let i = 0; i < count; i++) uncommitted.push([indexes[i]!, dataAt + i * pageSize])
    } else {
      committed ??= new JournalPages(fd, pageSize)
      for (const [index, offset] of uncommitted) committed.set(index, offset)
      uncommitted = []
    }
    at = dataAt + dataBytes
    records++
  }
  return { committed, records }
}
