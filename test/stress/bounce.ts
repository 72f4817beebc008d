/**
 * The bounce stress, after the kernel's uffd-stress (tools/testing/selftests/
 * mm/uffd-stress.c): worker threads read and write overlapping pages of one
 * region while the main thread flushes in a loop, prefetches and reads, and
 * (in the bounded modes) eviction keeps pushing pages out and fetching them
 * back. Where uffd-stress bounces pages between two areas and checks
 * per-page counters against a verification array, here the pages bounce
 * between the region and its backend, and every word is checked against a
 * model: by the workers as they go, between rounds through the region and in
 * the backend, and at the end by a reader that never saw the run's region.
 *
 * Everything a run does is drawn from its seed (the threads' interleaving is
 * not, so a seed reproduces the workload, not the schedule); every failure
 * says `seed=N`.
 */
import { Worker } from 'node:worker_threads'
import { openRegion, type Region, type RegionOptions } from '@faultline/core'
import { rng, subSeed } from '../fixtures/bounce-layout.mjs'
import { differences, expectedWords, type Geometry } from './bounce-check.js'
import { mainThread } from './bounce-main.js'
import { openStore, type StoreContext, type StoreKind } from './stores.js'

/** How writes are tracked and whether eviction runs: every combination openRegion allows. */
export interface Mode {
  name: string
  writeTracking: 'sync' | 'async'
  /** maxResident as a fraction of the region (needs sync tracking). */
  resident?: number
  /** Keep evicted clean pages in the second tier. */
  secondTier?: boolean
}

export const MODES: readonly Mode[] = [
  { name: 'sync', writeTracking: 'sync' },
  { name: 'async', writeTracking: 'async' },
  { name: 'sync+evict', writeTracking: 'sync', resident: 1 / 8 },
  { name: 'sync+evict+tier', writeTracking: 'sync', resident: 1 / 8, secondTier: true },
]

export interface BounceOptions {
  seed: number
  store: StoreKind
  mode: Mode
  rounds: number
  /** Operations per worker per round. */
  opsPerRound: number
  context: StoreContext
  /** A round that takes longer fails the run (a hang would otherwise only show as a test timeout, without the seed). */
  roundTimeoutMs?: number
  /** How to run this again, for the failure message. */
  rerun: string
}

/** What the workers did, summed over workers and rounds. */
export interface OpCounts {
  ops: number
  writes: number
  increments: number
  reads: number
  sweeps: number
}

export interface BounceResult {
  geometry: Geometry
  counts: OpCounts
  flushes: number
  stats: ReturnType<Region['stats']>
  ms: number
}

const workerUrl = new URL('../fixtures/bounce-worker.mjs', import.meta.url)

/** The region's shape, drawn from the seed: small pages and large, two to four workers. */
export function geometryFor(seed: number): Geometry {
  const r = rng(subSeed(seed, 0))
  const pageSize = r.chance(0.6) ? 4096 : 16384
  const bytes = (1 + r.below(3)) * 2 ** 20
  return { pageSize, pages: bytes / pageSize, workers: 2 + r.below(3) }
}

export function describeRun(o: Pick<BounceOptions, 'seed' | 'store' | 'mode'>): string {
  return `seed=${o.seed} ${o.store} ${o.mode.name}`
}

/** One run; throws, naming the seed, on any difference from the model. */
export async function bounce(o: BounceOptions): Promise<BounceResult> {
  try {
    return await bounceUnlabelled(o)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    throw new Error(`bounce ${describeRun(o)} (again: ${o.rerun}): ${message}`, { cause: err })
  }
}

async function bounceUnlabelled(o: BounceOptions): Promise<BounceResult> {
  const started = Date.now()
  const g = geometryFor(o.seed)
  const size = g.pages * g.pageSize
  const store = openStore(o.store, `bounce-${o.seed}-${o.mode.name.replace(/\W/g, '-')}`, size, g.pageSize, o.context)
  const options: RegionOptions = { size, pageSize: g.pageSize, backend: store.spec, writeTracking: o.mode.writeTracking }
  if (o.mode.resident !== undefined) options.maxResident = Math.max(16, Math.round(g.pages * o.mode.resident)) * g.pageSize
  if (o.mode.secondTier === true) options.secondTierBytes = size / 4
  try {
    const model = new SharedArrayBuffer(size)
    const adds = new SharedArrayBuffer(g.workers * g.pages * 4)
    const region = await openRegion(options)
    let result: BounceResult
    try {
      const { counts, flushes } = await drive(region, g, o, model, adds)
      await region.flush()
      const stats = region.stats()
      expectBounced(stats, o.mode, flushes)
      result = { geometry: g, counts, flushes, stats, ms: 0 }
    } finally {
      await region.close()
    }
    const expected = expectedWords(g, new Uint32Array(model), new Uint32Array(adds))
    assertSame(g, expected, await store.readBack(), 'read back by a fresh reader after close')
    return { ...result, ms: Date.now() - started }
  } finally {
    await store.remove()
  }
}

/** The rounds: workers run, the main thread keeps the pager busy, then everything is checked. */
async function drive(region: Region, g: Geometry, o: BounceOptions, model: SharedArrayBuffer, adds: SharedArrayBuffer): Promise<{ counts: OpCounts; flushes: number }> {
  const handle = region.handle()
  const workers = Array.from(
    { length: g.workers },
    (_, id) => new Worker(workerUrl, { workerData: { handle, id, workers: g.workers, pages: g.pages, pageSize: g.pageSize, seed: subSeed(o.seed, id + 1), opsPerRound: o.opsPerRound, model, adds } }),
  )
  const main = mainThread(region, g, subSeed(o.seed, 100))
  const counts: OpCounts = { ops: 0, writes: 0, increments: 0, reads: 0, sweeps: 0 }
  try {
    for (let round = 0; round < o.rounds; round++) {
      const finished = Promise.allSettled(workers.map((w) => runRound(w)))
      let done = false
      void finished.then(() => (done = true))
      const busy = (async () => {
        while (!done) await main.step()
      })().then(
        () => undefined,
        (err: unknown) => err,
      )
      const outcome = await withTimeout(finished, o.roundTimeoutMs ?? 45_000, `round ${round} did not finish`)
      const failed = outcome.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      const mainFailed = await busy
      if (mainFailed !== undefined) throw mainFailed
      for (const r of outcome) if (r.status === 'fulfilled') for (const k of Object.keys(counts) as Array<keyof OpCounts>) counts[k] += r.value[k]
      // A quiet moment: the flush takes every write, so the backend must now equal the model.
      await region.flush()
      const expected = expectedWords(g, new Uint32Array(model), new Uint32Array(adds))
      assertSame(g, expected, region.view(0, g.pages * g.pageSize).slice(), `through the region after round ${round}`)
      assertSame(g, expected, await region.read(0, g.pages * g.pageSize), `in the backend after round ${round}'s flush`)
    }
  } finally {
    await Promise.all(workers.map((w) => stop(w)))
  }
  return { counts, flushes: main.flushes }
}

/** Starts a round in a worker; resolves with what it did in it. */
function runRound(worker: Worker): Promise<OpCounts> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { error?: string; counts: OpCounts }): void => {
      worker.off('error', onError)
      if (m.error !== undefined) reject(new Error(m.error))
      else resolve(m.counts)
    }
    const onError = (err: Error): void => {
      worker.off('message', onMessage)
      reject(err)
    }
    worker.once('message', onMessage)
    worker.once('error', onError)
    worker.postMessage('go')
  })
}

async function stop(worker: Worker): Promise<void> {
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  worker.postMessage('stop')
  await withTimeout(exited, 10_000, 'a worker did not exit').catch(() => worker.terminate())
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

function assertSame(g: Geometry, expected: Uint32Array, bytes: Uint8Array, where: string): void {
  const diff = differences(g, expected, bytes)
  if (diff.length > 0) throw new Error(`the region differs from the model ${where}:\n  ${diff.join('\n  ')}`)
}

/** A run that never evicted or never flushed under load did not stress what it claims to. */
function expectBounced(stats: ReturnType<Region['stats']>, mode: Mode, flushes: number): void {
  const problems: string[] = []
  if (stats.dirtyPages !== 0) problems.push(`${stats.dirtyPages} pages still dirty after the last flush`)
  if (stats.writeTracking !== `${mode.writeTracking}-wp`) problems.push(`write tracking ${stats.writeTracking}`)
  if (flushes < 2) problems.push(`only ${flushes} flushes ran under load`)
  if (mode.resident !== undefined && (stats.evictedPages === 0 || stats.refetchedPages === 0)) problems.push(`eviction did not bounce pages (evicted ${stats.evictedPages}, refetched ${stats.refetchedPages})`)
  if (mode.secondTier === true && stats.secondTierHits === 0) problems.push('no refault was served from the second tier')
  if (problems.length > 0) throw new Error(`the run did not stress what it should: ${problems.join('; ')}`)
}
