/**
 * Real columnar readers reading through a region's memory: Apache Arrow JS
 * over a Uint8Array view of the region (an IPC file: four columns, 16 record
 * batches), and hyparquet over an AsyncBuffer whose slice() copies out of
 * the region's view (several row groups). Each reads one column of four over
 * the HTTP backend (serve-static) and the S3 backend (s3rver), at the
 * default page size and at 4 KiB. The values must be right, and the bytes the
 * region fetched must stay within 1.1× of what the reader needed — the
 * column's bytes and the file's metadata, from the file's own metadata,
 * rounded out to the region's pages (test/readers/columnar.ts). Each case
 * prints its ratio.
 */
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tableFromIPC } from 'apache-arrow'
import { parquetMetadataAsync, parquetRead, type AsyncBuffer } from 'hyparquet'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { deleteObject, putObject, s3Spec, uniqueKey } from '../helpers/remote.js'
import {
  ARROW_BATCHES,
  ARROW_BATCH_ROWS,
  PARQUET_GROUP_ROWS,
  PARQUET_ROW_GROUPS,
  arrowColumnRanges,
  fetchRatio,
  makeArrowFile,
  makeParquetFile,
  parquetColumnRanges,
  valueB,
  type Range,
} from './columnar.js'

/** The target: bytes fetched ≤ 1.1 × (the pages of what was read + the file's metadata). */
const TARGET = 1.1

const files = { arrow: makeArrowFile(), parquet: makeParquetFile() }
const names = { arrow: `${uniqueKey('reader')}.arrow`, parquet: `${uniqueKey('reader')}.parquet` }

beforeAll(async () => {
  for (const kind of ['arrow', 'parquet'] as const) {
    writeFileSync(join(inject('httpDir'), names[kind]), files[kind])
    await putObject(names[kind], files[kind])
  }
}, 120_000)

afterAll(async () => {
  for (const kind of ['arrow', 'parquet'] as const) {
    rmSync(join(inject('httpDir'), names[kind]), { force: true })
    await deleteObject(names[kind])
  }
})

const targets: Array<[string, (kind: 'arrow' | 'parquet') => BackendSpec]> = [
  ['http', (kind) => ({ type: 'http', url: `${inject('httpBase')}/${names[kind]}` })],
  ['s3', (kind) => s3Spec(names[kind])],
]
const pageSizes: Array<[string, number | undefined]> = [
  ['default pages', undefined],
  ['4 KiB pages', 4096],
]

describe.each(targets)('columnar readers over %s', (target, spec) => {
  describe.each(pageSizes)('%s', (pages, pageSize) => {
    it('Apache Arrow reads one column of four from an IPC file of 16 record batches, fetching ≤ 1.1× what it needed', async () => {
      const file = files.arrow
      const region = await openRegion({ backend: spec('arrow'), pageSize })
      try {
        expect(region.dataSize).toBe(file.byteLength)
        const table = tableFromIPC(region.view(0, region.dataSize))
        expect(table.numRows).toBe(ARROW_BATCHES * ARROW_BATCH_ROWS)
        expect(table.batches.length).toBe(ARROW_BATCHES)
        const column = table.getChild('b')!
        let row = 0
        let wrong = 0
        for (const data of column.data) {
          const values = data.values as Float64Array
          for (let i = 0; i < data.length; i++, row++) if (values[i] !== valueB(row)) wrong++
        }
        expect(row).toBe(ARROW_BATCHES * ARROW_BATCH_ROWS)
        expect(wrong).toBe(0)
        const r = fetchRatio(`arrow over ${target}, ${pages}`, region, arrowColumnRanges(file, 'b'), file.byteLength)
        expect(region.stats().fetchErrors).toBe(0)
        expect(r.ratio).toBeLessThanOrEqual(TARGET)
      } finally {
        await region.close()
      }
    })

    it('hyparquet reads one column chunk of each row group, fetching ≤ 1.1× what it needed', async () => {
      const file = files.parquet
      const region = await openRegion({ backend: spec('parquet'), pageSize })
      try {
        expect(region.dataSize).toBe(file.byteLength)
        const view = region.view(0, region.dataSize)
        const asked: Range[] = []
        const buffer: AsyncBuffer = {
          byteLength: view.byteLength,
          slice(start, end = view.byteLength) {
            asked.push([start, end])
            return view.slice(start, end).buffer
          },
        }
        // The footer alone: hyparquet's default first read is the last 512 KiB, a guess that saves a
        // round trip over HTTP and is only waste over a region, which fetches nothing it is not asked for.
        const metadata = await parquetMetadataAsync(buffer, { initialFetchSize: 8 })
        expect(metadata.row_groups.length).toBe(PARQUET_ROW_GROUPS)
        let rows = 0
        let wrong = 0
        await parquetRead({
          file: buffer,
          metadata,
          columns: ['b'],
          onChunk({ columnName, columnData, rowStart }) {
            expect(columnName).toBe('b')
            for (let i = 0; i < columnData.length; i++, rows++) if (columnData[i] !== valueB(rowStart + i)) wrong++
          },
        })
        expect(rows).toBe(PARQUET_ROW_GROUPS * PARQUET_GROUP_ROWS)
        expect(wrong).toBe(0)
        const needed = parquetColumnRanges(file, 'b')
        // The reader asked for the footer and the column's chunks, nothing else.
        const within = (start: number, end: number) => needed.some(([s, e]) => start >= s && end <= e)
        expect(asked.filter(([s, e]) => !within(s, e))).toEqual([])
        const r = fetchRatio(`parquet over ${target}, ${pages}`, region, needed, file.byteLength)
        expect(region.stats().fetchErrors).toBe(0)
        expect(r.ratio).toBeLessThanOrEqual(TARGET)
      } finally {
        await region.close()
      }
    })
  })
})
