/**
 * The main job: make a dataset in a temporary directory, map it through a
 * file backend, read it back sequentially and at random, verify every byte,
 * and report what the pager did.
 */
import { createHash } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openRegion } from '../region.js'
import type { RegionStats } from '../stats.js'
import { checkPattern, fillPattern } from './pattern.js'
import { formatBytes, Progress } from './progress.js'

export interface RunOptions {
  size: number
  pageSize: number
  randomPages: number
  keep: boolean
}

const CHUNK = 4 * 2 ** 20

export async function runMainJob(opts: RunOptions, out: (line: string) => void): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'faultline-'))
  const path = join(dir, 'dataset.bin')
  try {
    out(`faultline: main job — ${formatBytes(opts.size)} dataset, ${formatBytes(opts.pageSize)} pages, file backend in ${dir}`)
    const fileHash = writeDataset(path, opts.size)

    const region = await openRegion({ backend: { type: 'file', path, readOnly: true }, pageSize: opts.pageSize })
    let ok = true
    try {
      const seq = readSequential(region.view.bind(region), opts.size)
      ok &&= report(out, 'sequential scan', seq.ms, opts.size, region.stats())
      if (seq.hash !== fileHash) {
        out(`  MISMATCH: region SHA-256 ${seq.hash} ≠ file ${fileHash}`)
        ok = false
      } else out(`  SHA-256 of the region equals the file's: ${fileHash.slice(0, 16)}…`)
    } finally {
      await region.close()
    }

    const region2 = await openRegion({ backend: { type: 'file', path, readOnly: true }, pageSize: opts.pageSize })
    try {
      const rnd = readRandom(region2.view.bind(region2), opts.size, opts.pageSize, opts.randomPages)
      ok = report(out, 'random pages', rnd.ms, rnd.pages * opts.pageSize, region2.stats()) && ok
      if (rnd.badPage >= 0) {
        out(`  MISMATCH at page ${rnd.badPage}`)
        ok = false
      } else out(`  ${rnd.pages} random pages match the pattern`)
    } finally {
      await region2.close()
    }
    out(ok ? 'faultline: OK, every byte verified' : 'faultline: FAILED')
    return ok
  } finally {
    if (!opts.keep) rmSync(dir, { recursive: true, force: true })
  }
}

function writeDataset(path: string, size: number): string {
  const progress = new Progress('creating dataset', size)
  const fd = openSync(path, 'w')
  const hash = createHash('sha256')
  const buffer = Buffer.alloc(CHUNK)
  try {
    for (let offset = 0; offset < size; offset += CHUNK) {
      const chunk = buffer.subarray(0, Math.min(CHUNK, size - offset))
      fillPattern(chunk, offset)
      writeSync(fd, chunk, 0, chunk.byteLength, offset)
      hash.update(chunk)
      progress.update(offset + chunk.byteLength)
    }
  } finally {
    closeSync(fd)
    progress.done()
  }
  return hash.digest('hex')
}

type ViewFn = (offset: number, length: number) => Uint8Array

function readSequential(view: ViewFn, size: number): { ms: number; hash: string } {
  const progress = new Progress('sequential scan', size)
  const hash = createHash('sha256')
  const t0 = performance.now()
  for (let offset = 0; offset < size; offset += CHUNK) {
    hash.update(view(offset, Math.min(CHUNK, size - offset)))
    progress.update(offset + CHUNK)
  }
  const ms = performance.now() - t0
  progress.done()
  return { ms, hash: hash.digest('hex') }
}

function readRandom(view: ViewFn, size: number, pageSize: number, count: number): { ms: number; pages: number; badPage: number } {
  const pageCount = Math.floor(size / pageSize)
  const progress = new Progress('random pages', count)
  let seed = 0x9e3779b9
  const next = (): number => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) % pageCount
  }
  let badPage = -1
  const t0 = performance.now()
  for (let i = 0; i < count && badPage < 0; i++) {
    const page = next()
    if (checkPattern(view(page * pageSize, pageSize), page * pageSize) >= 0) badPage = page
    progress.update(i + 1)
  }
  const ms = performance.now() - t0
  progress.done()
  return { ms, pages: count, badPage }
}

function report(out: (line: string) => void, label: string, ms: number, bytes: number, s: RegionStats): boolean {
  const l = s.faultLatencyUs
  out(`${label}:`)
  out(`  ${formatBytes(bytes)} in ${ms.toFixed(0)} ms = ${formatBytes((bytes / ms) * 1000)}/s`)
  out(`  faults ${s.faults} (duplicates ${s.duplicateFaults}), pages fetched ${s.pagesFetched} (${formatBytes(s.bytesFetched)}) in ${s.fetchRequests} requests, zero pages ${s.zeroPages}, resident ${s.residentPages}`)
  out(`  fault latency µs: p50 ${l.p50.toFixed(1)}  p90 ${l.p90.toFixed(1)}  p99 ${l.p99.toFixed(1)}  max ${l.max.toFixed(1)}  (${l.count} faults)`)
  return s.fetchErrors === 0
}
