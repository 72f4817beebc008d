/**
 * Columnar files for the reader suites, and what reading one column of them
 * should cost. The files are made here (Apache Arrow's own IPC writer,
 * hyparquet-writer), and the byte ranges a reader needs are computed from
 * each file's own metadata — Arrow's footer blocks and record-batch buffer
 * regions, Parquet's column-chunk offsets and sizes — not from what the reader
 * was seen to touch, so a reader or pager that reads more than it must shows
 * up as a ratio above 1.
 */
import { Message, RecordBatchFileReader, Table, tableFromArrays, tableToIPC } from 'apache-arrow'
import { parquetMetadata, type FileMetaData } from 'hyparquet'
import { parquetWriteBuffer } from 'hyparquet-writer'
import type { Region } from '@faultline/core'

/** A byte range [start, end) of a file. */
export type Range = readonly [start: number, end: number]

/** The four columns: `id` (int32) and three doubles; the suites read `b`. */
export const COLUMNS = ['id', 'a', 'b', 'c'] as const
export const ARROW_BATCHES = 16
export const ARROW_BATCH_ROWS = 32768
export const PARQUET_ROW_GROUPS = 8
export const PARQUET_GROUP_ROWS = 65536

/** The value of column `b` at row `row` (a double whose bits vary in every byte, so nothing compresses or dictionary-encodes it). */
export const valueB = (row: number): number => row * 1.000001 + Math.sin(row)

function columnsFor(first: number, rows: number): { id: Int32Array; a: Float64Array; b: Float64Array; c: Float64Array } {
  const id = new Int32Array(rows)
  const a = new Float64Array(rows)
  const b = new Float64Array(rows)
  const c = new Float64Array(rows)
  for (let i = 0; i < rows; i++) {
    const row = first + i
    id[i] = row
    a[i] = Math.cos(row) * 1e6
    b[i] = valueB(row)
    c[i] = row / 7 + 0.123456789
  }
  return { id, a, b, c }
}

/** An Arrow IPC *file* (not a stream): four columns, {@link ARROW_BATCHES} record batches of {@link ARROW_BATCH_ROWS} rows. */
export function makeArrowFile(): Uint8Array {
  const batches = Array.from({ length: ARROW_BATCHES }, (_, k) => tableFromArrays(columnsFor(k * ARROW_BATCH_ROWS, ARROW_BATCH_ROWS)).batches[0]!)
  return tableToIPC(new Table(batches), 'file')
}

/**
 * What reading one column of an Arrow IPC file needs: the leading magic, the
 * footer (with the schema and the block list), and for every record batch its
 * metadata message and the column's buffers in its body.
 */
export function arrowColumnRanges(file: Uint8Array, column: string): Range[] {
  const reader = RecordBatchFileReader.from(file)
  reader.open()
  const footer = reader.footer!
  const field = reader.schema.fields.findIndex((f) => f.name === column)
  if (field < 0) throw new Error(`no column ${column}`)
  const footerLength = new DataView(file.buffer, file.byteOffset + file.byteLength - 10, 4).getInt32(0, true)
  const ranges: Range[] = [
    [0, 8],
    [file.byteLength - 10 - footerLength, file.byteLength],
  ]
  for (let i = 0; i < footer.numRecordBatches; i++) {
    const block = footer.getRecordBatch(i)!
    const offset = Number(block.offset)
    ranges.push([offset, offset + block.metaDataLength])
    // The metadata block is the continuation marker, the length, then the flatbuffer.
    const message = Message.decode(file.subarray(offset + 8, offset + block.metaDataLength))
    if (!message.isRecordBatch()) throw new Error(`block ${i} is not a record batch`)
    const header = message.header()
    // Flat primitive columns without a dictionary: two buffers each (validity, values), in field order.
    const body = offset + block.metaDataLength
    for (const buffer of header.buffers.slice(2 * field, 2 * field + 2)) {
      if (buffer.length > 0) ranges.push([body + Number(buffer.offset), body + Number(buffer.offset) + Number(buffer.length)])
    }
  }
  reader.cancel()
  return ranges
}

/** An uncompressed Parquet file: four columns, {@link PARQUET_ROW_GROUPS} row groups of {@link PARQUET_GROUP_ROWS} rows. */
export function makeParquetFile(): Uint8Array {
  const rows = PARQUET_ROW_GROUPS * PARQUET_GROUP_ROWS
  const cols = columnsFor(0, rows)
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'id', data: cols.id, type: 'INT32', nullable: false },
      { name: 'a', data: cols.a, type: 'DOUBLE', nullable: false },
      { name: 'b', data: cols.b, type: 'DOUBLE', nullable: false },
      { name: 'c', data: cols.c, type: 'DOUBLE', nullable: false },
    ],
    codec: 'UNCOMPRESSED',
    rowGroupSize: PARQUET_GROUP_ROWS,
  })
  return new Uint8Array(buffer)
}

/** The footer's byte range: the Thrift metadata, its length and the trailing magic. */
export function parquetFooterRange(file: Uint8Array): Range {
  const metadataLength = new DataView(file.buffer, file.byteOffset + file.byteLength - 8, 4).getUint32(0, true)
  return [file.byteLength - 8 - metadataLength, file.byteLength]
}

/** The file's metadata, parsed from its own footer bytes. */
export function parquetFileMetadata(file: Uint8Array): FileMetaData {
  const [start, end] = parquetFooterRange(file)
  return parquetMetadata(file.slice(start, end).buffer)
}

/** What reading one column of a Parquet file needs: the footer and that column's chunk in every row group. */
export function parquetColumnRanges(file: Uint8Array, column: string): Range[] {
  const metadata = parquetFileMetadata(file)
  const ranges: Range[] = [parquetFooterRange(file)]
  for (const group of metadata.row_groups) {
    const chunk = group.columns.find((c) => c.meta_data?.path_in_schema.join('.') === column)?.meta_data
    if (chunk === undefined) throw new Error(`no column chunk ${column}`)
    const start = Number(chunk.dictionary_page_offset ?? chunk.data_page_offset)
    ranges.push([start, start + Number(chunk.total_compressed_size)])
  }
  return ranges
}

/** Bytes of the pages `ranges` touch (each range rounded out to `pageSize`, overlaps counted once, the last page cut at the file's end). */
export function pageRoundedBytes(ranges: readonly Range[], pageSize: number, fileSize: number): number {
  const pages = new Set<number>()
  for (const [start, end] of ranges) {
    for (let p = Math.floor(start / pageSize); p * pageSize < end; p++) pages.add(p)
  }
  let bytes = 0
  for (const p of pages) bytes += Math.min(pageSize, fileSize - p * pageSize)
  return bytes
}

export interface FetchRatio {
  /** Bytes the region fetched from its backend. */
  fetched: number
  /** Requests it took. */
  requests: number
  /** Bytes the reader needed (data and metadata), rounded out to the region's pages. */
  needed: number
  /** The same, not rounded. */
  neededExact: number
  /** fetched ÷ needed: the suites' target is ≤ 1.1. */
  ratio: number
}

/**
 * fetched ÷ needed for a region a reader has just read `ranges` of, printed
 * as one line (`label: fetched … ÷ needed … = ratio`) and returned.
 */
export function fetchRatio(label: string, region: Region, ranges: readonly Range[], fileSize: number): FetchRatio {
  const s = region.stats()
  const needed = pageRoundedBytes(ranges, region.pageSize, fileSize)
  const neededExact = pageRoundedBytes(ranges, 1, fileSize)
  const r = { fetched: s.bytesFetched, requests: s.fetchRequests, needed, neededExact, ratio: s.bytesFetched / needed }
  console.log(
    `${label}: fetched ${r.fetched} bytes in ${r.requests} requests ÷ needed ${needed} (${neededExact} exact, rounded to ${region.pageSize}-byte pages) = ${r.ratio.toFixed(3)}x of ${fileSize} bytes`,
  )
  return r
}
