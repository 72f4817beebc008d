// The file backend's journal on real files: what a crash can leave in it,
// and what an open makes of that.
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as zlib from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { FileBackend } from '@faultline/backends'
import { tableCrc32 } from '../../packages/backends/src/journal/crc32.js'
import { Journal, journalPath, readJournal } from '../../packages/backends/src/journal/journal.js'
import { pageVersion, stampPage } from '../fixtures/version-pages.mjs'
import { tempDir } from '../helpers/tmp.js'

const dir = tempDir()
const pageSize = 4096
const pages = 8
let n = 0

function page(index: number, version: number, size = pageSize): Uint8Array {
  const bytes = new Uint8Array(size)
  stampPage(bytes, index, version)
  return bytes
}

/** A data file of `pages` pages, all version 0. */
function dataFile(): string {
  const path = join(dir, `data-${n++}.bin`)
  const bytes = new Uint8Array(pageSize * pages)
  for (let i = 0; i < pages; i++) bytes.set(page(i, 0), i * pageSize)
  writeFileSync(path, bytes)
  return path
}

/** The version of each page of the data file's bytes on disk (undefined: torn or foreign). */
function versionsOnDisk(path: string, size = pageSize): Array<number | undefined> {
  const bytes = readFileSync(path)
  return Array.from({ length: bytes.byteLength / size }, (_, i) => pageVersion(bytes.subarray(i * size, (i + 1) * size), i))
}

function versionsRead(backend: FileBackend, count = pages): Array<number | undefined> {
  const got = backend.readSync(Array.from({ length: count }, (_, i) => i))
  return got.map((bytes, i) => (bytes === undefined ? undefined : pageVersion(bytes, i)))
}

/**
 * Journals `flushes` (each a list of batches of page indexes, at version
 * 1, 2, …) the way a crash between commit and copy would leave it: every
 * flush committed, none of it in the file. Returns the journal's bytes.
 */
function leaveJournal(path: string, flushes: number[][][], commit = true): Buffer {
  const journal = new Journal(journalPath(path), pageSize, true)
  flushes.forEach((batches, f) => {
    for (const batch of batches) journal.append(batch.map((index) => ({ index, data: page(index, f + 1) })))
    if (commit) journal.commit()
  })
  journal.close() // leaves it: it is not empty
  return readFileSync(journalPath(path))
}

function open(path: string, extra: Record<string, unknown> = {}, readOnly = false, size = pageSize): FileBackend {
  return new FileBackend({ type: 'file', path, ...extra } as never, { pageSize: size, size: undefined, readOnly })
}

/** The committed pages of the journal at `path` as [index, version] pairs, read with the backend's own reader. */
function committed(path: string): Array<[number, number | undefined]> | undefined {
  const found = readJournal(journalPath(path))
  if (found === undefined) return undefined
  try {
    const out: Array<[number, number | undefined]> = []
    for (let index = 0; index < pages; index++) {
      if (!found.covers(index * pageSize, (index + 1) * pageSize)) continue
      const bytes = new Uint8Array(pageSize)
      found.overlay(bytes, index * pageSize)
      out.push([index, pageVersion(bytes, index)])
    }
    return out
  } finally {
    closeSync(found.fd)
  }
}

describe('file backend journal', () => {
  it('a committed journal is replayed into the file when it is opened for writing, then removed', async () => {
    const path = dataFile()
    leaveJournal(path, [[[1, 3], [2]]])
    expect(versionsOnDisk(path)).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
    const backend = open(path)
    try {
      expect(versionsOnDisk(path)).toEqual([0, 1, 1, 1, 0, 0, 0, 0])
      expect(existsSync(journalPath(path))).toBe(false)
      expect(versionsRead(backend)).toEqual([0, 1, 1, 1, 0, 0, 0, 0])
    } finally {
      await backend.close()
    }
  })

  it('a journal with two commits replays the newest copy of each page', async () => {
    const path = dataFile()
    leaveJournal(path, [[[1, 2]], [[2, 5]]])
    const backend = open(path)
    await backend.close()
    expect(versionsOnDisk(path)).toEqual([0, 1, 2, 0, 0, 2, 0, 0])
  })

  it('a read-only open reads a committed journal over the file, at any page size, and leaves both as they are', async () => {
    const path = dataFile()
    // Page 9 lies past the end of the file: the journal makes the file longer.
    const journal = new Journal(journalPath(path), pageSize, true)
    journal.append([1, 6, 9].map((index) => ({ index, data: page(index, 1) })))
    journal.commit()
    journal.close()
    const before = readFileSync(path)
    const backend = open(path, {}, true)
    try {
      expect(backend.info.size).toBe(10 * pageSize)
      // page 8 lies past the file and is in no journal record: zeros
      expect(versionsRead(backend, 10)).toEqual([0, 1, 0, 0, 0, 0, 1, 0, undefined, 1])
      expect(backend.isAbsent(9)).toBe(false)
      expect(backend.isAbsent(8)).toBe(true)
    } finally {
      await backend.close()
    }
    // A reader with 4x larger pages sees the same bytes.
    const wide = open(path, {}, true, 4 * pageSize)
    try {
      const [first, second] = wide.readSync([0, 1])
      expect(pageVersion(first!.subarray(pageSize, 2 * pageSize), 1)).toBe(1)
      expect(pageVersion(first!.subarray(0, pageSize), 0)).toBe(0)
      expect(pageVersion(second!.subarray(2 * pageSize, 3 * pageSize), 6)).toBe(1)
    } finally {
      await wide.close()
    }
    expect(Buffer.compare(readFileSync(path), before)).toBe(0)
    expect(committed(path)).toEqual([
      [1, 1],
      [6, 1],
    ])
  })

  it('a journal cut short at any byte replays nothing past its last whole commit', () => {
    const path = dataFile()
    // flush 1: one batch of two pages; flush 2: two batches (pages 2, then 4 and 5)
    const full = leaveJournal(path, [[[1, 2]], [[2], [4, 5]]])
    const firstCommitEnds = 3 * pageSize + 4096 // header block + 2 pages, then a commit record
    expect(full.byteLength).toBe(firstCommitEnds + (4096 + pageSize) + (4096 + 2 * pageSize) + 4096)
    // Every byte around each record's start and end and through its fixed
    // fields, and every 509th byte in between (a cut at each of 40 960 bytes
    // takes a minute here).
    const starts = [0, 3 * pageSize, firstCommitEnds, firstCommitEnds + 4096 + pageSize, full.byteLength - 4096, full.byteLength]
    const cuts = new Set<number>()
    for (const start of starts) for (let d = -2; d < 48; d++) cuts.add(start + d)
    for (let cut = 0; cut < full.byteLength; cut += 509) cuts.add(cut)
    const outcomes = new Map<string, number>()
    for (const cut of [...cuts].filter((c) => c >= 0 && c <= full.byteLength).sort((a, b) => a - b)) {
      writeFileSync(journalPath(path), full.subarray(0, cut))
      const got = committed(path)
      const expected = cut === full.byteLength ? [[1, 1], [2, 2], [4, 2], [5, 2]] : cut >= firstCommitEnds ? [[1, 1], [2, 1]] : undefined
      expect(got, `cut at byte ${cut}`).toEqual(expected)
      outcomes.set(JSON.stringify(got), (outcomes.get(JSON.stringify(got)) ?? 0) + 1)
    }
    expect(outcomes.size).toBe(3)
  })

  it('a record whose checksum does not match ends the journal there', () => {
    const path = dataFile()
    const full = leaveJournal(path, [[[1, 2]], [[3]]])
    const second = 3 * pageSize + 4096 // where flush 2's record starts
    const flips: Array<[string, number, Array<[number, number]> | undefined]> = [
      ['a byte of flush 2 page data', second + 4096 + 100, [[1, 1], [2, 1]]],
      ['the last byte of flush 2 page data', second + 4096 + pageSize - 1, [[1, 1], [2, 1]]],
      ['flush 2 page index', second + 40, [[1, 1], [2, 1]]],
      ['flush 1 checksum', 32, undefined],
      ['flush 1 padding', 1000, undefined],
      ['flush 1 commit epoch', 3 * pageSize + 24, undefined],
    ]
    for (const [what, at, expected] of flips) {
      const bad = Buffer.from(full)
      bad[at] = bad[at]! ^ 0x40
      writeFileSync(journalPath(path), bad)
      expect(committed(path), what).toEqual(expected)
    }
  })

  it('records left over from before a reset are not taken for part of the journal after it', () => {
    const path = dataFile()
    const journal = new Journal(journalPath(path), pageSize, true)
    journal.append([1, 2].map((index) => ({ index, data: page(index, 1) })))
    journal.append([3].map((index) => ({ index, data: page(index, 1) })))
    journal.commit()
    const length = statSync(journalPath(path)).size
    journal.reset()
    expect(statSync(journalPath(path)).size).toBe(length)
    expect(committed(path)).toBeUndefined()
    // The new flush's first record is as long as the old one, so the old
    // second record (sequence number 1, as the next would have) and commit
    // start right where the next record would.
    journal.append([5, 6].map((index) => ({ index, data: page(index, 2) })))
    journal.close()
    expect(statSync(journalPath(path)).size).toBe(length)
    expect(committed(path)).toBeUndefined()
  })

  it('a reset cuts the journal to the length of the flush it ends', () => {
    const path = dataFile()
    const journal = new Journal(journalPath(path), pageSize, true)
    journal.append([1, 2, 3, 4].map((index) => ({ index, data: page(index, 1) })))
    journal.commit()
    journal.reset()
    expect(statSync(journalPath(path)).size).toBe(4096 + 4 * pageSize + 4096)
    journal.append([{ index: 1, data: page(1, 2) }])
    journal.commit()
    journal.reset()
    expect(statSync(journalPath(path)).size).toBe(4096 + pageSize + 4096)
    journal.close()
    expect(existsSync(journalPath(path))).toBe(false)
  })

  it('write() journals; sync() commits, copies into the file and resets the journal; close() removes it', async () => {
    const path = dataFile()
    const backend = open(path)
    try {
      expect(existsSync(journalPath(path))).toBe(false)
      await backend.write([2, 3].map((index) => ({ index, data: page(index, 7) })))
      expect(statSync(journalPath(path)).size).toBe(4096 + 2 * pageSize)
      expect(versionsOnDisk(path)).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
      expect(versionsRead(backend)).toEqual([0, 0, 7, 7, 0, 0, 0, 0])
      await backend.sync()
      expect(versionsOnDisk(path)).toEqual([0, 0, 7, 7, 0, 0, 0, 0])
      expect(committed(path)).toBeUndefined()
      expect(versionsRead(backend)).toEqual([0, 0, 7, 7, 0, 0, 0, 0])
      // the next flush starts a new journal
      await backend.write([{ index: 3, data: page(3, 8) }])
      await backend.sync()
      expect(versionsOnDisk(path)).toEqual([0, 0, 7, 8, 0, 0, 0, 0])
    } finally {
      await backend.close()
    }
    expect(existsSync(journalPath(path))).toBe(false)
  })

  it('without a journal a write is in the file when write() returns, and the backend says so (synchronousWrites); with one it is not', async () => {
    const path = dataFile()
    const direct = open(path, { journal: false })
    try {
      expect(direct.info.synchronousWrites).toBe(true)
      const data = page(4, 3)
      const written = direct.write([{ index: 4, data }])
      // The pager lets writers at the page once write() has returned: later bytes must not reach the file.
      data.fill(0xff)
      await written
      expect(versionsOnDisk(path)).toEqual([0, 0, 0, 0, 3, 0, 0, 0])
    } finally {
      await direct.close()
    }
    const journaled = open(path)
    const readOnly = open(path, { journal: false }, true)
    try {
      expect(journaled.info.synchronousWrites).toBe(false)
      expect(readOnly.info.synchronousWrites).toBe(false)
    } finally {
      await journaled.close()
      await readOnly.close()
    }
  })

  it('pages written but never synced are not replayed: the file keeps the last synced flush', async () => {
    const path = dataFile()
    const backend = open(path)
    await backend.write([{ index: 1, data: page(1, 1) }])
    await backend.sync()
    await backend.write([{ index: 1, data: page(1, 2) }])
    // closed without sync, as after a flush whose sync() failed
    await backend.close()
    expect(existsSync(journalPath(path))).toBe(true)
    const again = open(path)
    await again.close()
    expect(versionsOnDisk(path)).toEqual([0, 1, 0, 0, 0, 0, 0, 0])
    expect(existsSync(journalPath(path))).toBe(false)
  })

  it('journal: false writes in place and creates no journal, but still replays one a crash left', async () => {
    const path = dataFile()
    leaveJournal(path, [[[4]]])
    const backend = open(path, { journal: false })
    try {
      expect(versionsOnDisk(path)).toEqual([0, 0, 0, 0, 1, 0, 0, 0])
      expect(existsSync(journalPath(path))).toBe(false)
      await backend.write([{ index: 6, data: page(6, 3) }])
      expect(versionsOnDisk(path)).toEqual([0, 0, 0, 0, 1, 0, 3, 0])
      await backend.sync()
      expect(existsSync(journalPath(path))).toBe(false)
    } finally {
      await backend.close()
    }
  })

  it('journal must be true or false', () => {
    expect(() => open(dataFile(), { journal: 'yes' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'backend.journal', message: expect.stringMatching(/journal.*true or false.*"yes"/) }))
  })

  it('a journal that cannot be read fails the open, naming it, rather than reading pages it may hold from the file', () => {
    const path = dataFile()
    mkdirSync(journalPath(path))
    for (const readOnly of [false, true]) {
      expect(() => open(path, {}, readOnly)).toThrow(expect.objectContaining({ code: 'ERR_BACKEND', message: expect.stringContaining(`journal ${journalPath(path)}`) }))
    }
  })

  it('the table CRC-32 (Node before 20.15) gives zlib.crc32 values, so journals move between Node versions', () => {
    const data = randomBytes(100_003)
    expect(tableCrc32(data)).toBe(zlib.crc32(data))
    expect(tableCrc32(data.subarray(777), tableCrc32(data.subarray(0, 777)))).toBe(zlib.crc32(data))
    expect(tableCrc32(new Uint8Array(0))).toBe(0)
  })
})
