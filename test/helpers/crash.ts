/**
 * The crash-consistency loop shared by the file, Redis and S3 suites: a
 * child process rewrites every page of a region with version after version,
 * flushing each, and is SIGKILLed at random moments (aimed at its flushes);
 * after each kill the store is opened again through a region and every page
 * must be whole, no older than the last flush that resolved and no newer
 * than the one in flight. A store that promises whole flushes (the file
 * journal) must also never show two versions at once.
 *
 * FAULTLINE_CRASH_SEED repeats a run's kill times, FAULTLINE_CRASH_KILLS and
 * FAULTLINE_CRASH_BUDGET_MS make it longer, FAULTLINE_CRASH_LOG=1 prints
 * what each case did.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'vitest'
import { openRegion, type BackendSpec } from '@faultline/core'
import { pageVersion, stampPage } from '../fixtures/version-pages.mjs'

const writer = fileURLToPath(new URL('../fixtures/crash-writer.mjs', import.meta.url))
const kills = Number(process.env['FAULTLINE_CRASH_KILLS'] ?? 16)
// Each kill costs about a second (a Node start, a flush or three, reading the
// store back); on a busy machine fewer kills fit, so each case stops here.
const budgetMs = Number(process.env['FAULTLINE_CRASH_BUDGET_MS'] ?? 18_000)
/** A test timeout that lets the loop use its whole budget and finish its last kill. */
export const crashTimeoutMs = budgetMs + 45_000
export const crashSeed = Number(process.env['FAULTLINE_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31))

export interface CrashStore {
  label: string
  backend: BackendSpec
  pageSize: number
  pages: number
  /** Puts version 0 of every page in place (`initial` holds it). */
  prepare(initial: Uint8Array): Promise<void>
  /** Runs after each kill, before the store is inspected (e.g. drops the dead writer's lease). */
  afterKill?(): Promise<void>
  /** Every page always from one flush: a flush is atomic across pages. */
  wholeFlushes: boolean
  /**
   * Read pages through the mapping (views) rather than `region.read()`. A
   * view of a page the backend refuses ends in SIGBUS, so only for stores
   * whose failures are not the question.
   */
  viaViews: boolean
}

function rng(s: number): () => number {
  let a = s >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

interface Run {
  /** Versions whose flush the writer reported resolved. */
  flushed: number[]
  /** How long each of those flushes took, in ms. */
  flushMs: number[]
  stderr: string
  signal: NodeJS.Signals | null
  /** True when the writer was still running when the guard killed it. */
  stuck: boolean
}

/**
 * Starts the writer, SIGKILLs it `delayMs` after it says it begins its
 * `flush`-th flush, and collects what it reported. Aiming at a flush makes
 * most kills land while pages are being written (and the caller scales the
 * delay to how long flushes take, so kills reach their last step); some
 * delays reach past the end of a flush, so other kills land between flushes.
 */
function runAndKill(store: CrashStore, firstVersion: number, flush: number, delayMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const args = { backend: store.backend, pageSize: store.pageSize, pages: store.pages, firstVersion }
    const child = spawn(process.execPath, [writer, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timer: NodeJS.Timeout | undefined
    let stuck = false
    const guard = setTimeout(() => {
      stuck = true
      child.kill('SIGKILL')
    }, 20_000)
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      if (timer === undefined && stdout.split('\nflushing ').length > flush) timer = setTimeout(() => child.kill('SIGKILL'), delayMs)
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    // 'close' comes after the pipes end: every line written before the kill has been read.
    child.on('close', (_code, signal) => {
      clearTimeout(guard)
      clearTimeout(timer)
      const lines = [...stdout.matchAll(/^flushed (\d+) ([\d.]+)$/gm)]
      resolve({ flushed: lines.map((m) => Number(m[1])), flushMs: lines.map((m) => Number(m[2])), stderr, signal, stuck })
    })
  })
}

interface Verdict {
  /** Pages that are not one whole version, or that the backend refused to return (`page: why`). */
  torn: string[]
  tooOld: number[]
  fromTheFuture: number[]
  versions: Set<number>
}

async function inspect(store: CrashStore, access: 'read-write' | 'read-only', oldest: number, newest: number): Promise<Verdict> {
  const { pageSize, pages } = store
  // The size is given: a store whose metadata a crash damaged fails here with ERR_GEOMETRY.
  const region = await openRegion({ size: pageSize * pages, pageSize, backend: store.backend, access, fetchTimeoutMs: 5_000 })
  const verdict: Verdict = { torn: [], tooOld: [], fromTheFuture: [], versions: new Set() }
  try {
    for (let page = 0; page < pages; page++) {
      let bytes: Uint8Array
      try {
        bytes = store.viaViews ? region.view(page * pageSize, pageSize) : await region.read(page * pageSize, pageSize)
      } catch (err) {
        verdict.torn.push(`${page}: ${(err as Error).message}`)
        continue
      }
      const v = pageVersion(bytes, page)
      if (v === undefined) verdict.torn.push(String(page))
      else {
        verdict.versions.add(v)
        if (v < oldest) verdict.tooOld.push(page)
        if (v > newest) verdict.fromTheFuture.push(page)
      }
    }
  } finally {
    await region.close()
  }
  return verdict
}

/** Version 0 of every page of `store`, as `prepare` must store it. */
function initialImage(store: CrashStore): Uint8Array {
  const initial = new Uint8Array(store.pageSize * store.pages)
  for (let page = 0; page < store.pages; page++) stampPage(initial.subarray(page * store.pageSize, (page + 1) * store.pageSize), page, 0)
  return initial
}

/** The whole loop for one store: fails the test on any torn, too old, future or (for wholeFlushes) mixed page. */
export async function crashLoop(store: CrashStore): Promise<void> {
  const seed = crashSeed
  await store.prepare(initialImage(store))
  const random = rng(seed)
  let resolved = 0 // version 0 is what prepare stored
  let next = 1
  const problems: string[] = []
  let torn = 0
  let withFlushes = 0
  let done = 0
  const flushMs: number[] = [100]
  const started = Date.now()
  for (let kill = 0; kill < kills && Date.now() - started < budgetMs; kill++, done++) {
    const flush = 1 + Math.floor(random() * 3)
    const typicalMs = [...flushMs].sort((a, b) => a - b)[flushMs.length >> 1]!
    const delayMs = Math.floor(random() * 1.25 * typicalMs)
    const run = await runAndKill(store, next, flush, delayMs)
    expect(run.signal, `seed ${seed}, kill ${kill}: the writer died on its own:\n${run.stderr}`).toBe('SIGKILL')
    expect(run.stuck, `seed ${seed}, kill ${kill}: the writer was stuck for 20 s:\n${run.stderr}`).toBe(false)
    await store.afterKill?.()
    flushMs.push(...run.flushMs)
    const last = run.flushed.at(-1)
    if (last !== undefined) {
      resolved = last
      withFlushes++
    }
    // The writer may have been flushing the version after the last it reported.
    const newest = (last ?? next - 1) + 1
    const access = kill % 2 === 0 ? 'read-write' : 'read-only'
    const v = await inspect(store, access, resolved, newest)
    torn += v.torn.length
    if (v.torn.length + v.tooOld.length + v.fromTheFuture.length > 0) {
      problems.push(`kill ${kill} ${delayMs} ms into flush ${flush} (${access} open, expected versions ${resolved}..${newest}): torn pages [${v.torn.join(', ')}], too old [${v.tooOld.join(',')}], from the future [${v.fromTheFuture.join(',')}]`)
    }
    if (store.wholeFlushes && v.versions.size > 1) {
      problems.push(`kill ${kill} ${delayMs} ms into flush ${flush} (${access} open): pages of versions ${[...v.versions].sort((a, b) => a - b).join(', ')} at once`)
    }
    next = newest + 1
  }
  if (process.env['FAULTLINE_CRASH_LOG']) console.log(`${store.label}: ${done} kills, ${withFlushes} after a resolved flush, ${torn} torn, median flush ${[...flushMs].sort((a, b) => a - b)[flushMs.length >> 1]} ms, ${Date.now() - started} ms`)
  expect(problems, `seed ${seed} (FAULTLINE_CRASH_SEED=${seed} repeats the kill times): ${torn} torn pages seen over ${done} kills (one not rewritten since is seen again)\n${problems.join('\n')}`).toEqual([])
  // The kills must land after flushes as well as during them, or the lower bound is untested.
  expect(withFlushes, `seed ${seed}: ${withFlushes} of ${done} kills came after a resolved flush`).toBeGreaterThan(done / 4)
}
