/**
 * Pager threads outlive their region: a thread whose region closed waits,
 * for a while, to serve the next region opened in this process, which then
 * costs a message instead of a thread start and a module load (~50 ms
 * here). Each thread still serves one region at a time, so a pager that
 * fails takes down only its own region. Waiting threads are unref'd (they
 * never keep the process alive) and end after IDLE_MS.
 */
import { Worker } from 'node:worker_threads'
import { native } from '@faultline/native'
import type { PagerStartData } from './protocol.js'

/** Most threads kept waiting; a region closing beyond that lets its thread end. */
const MAX_IDLE = 2
/** How long a thread waits for a region before it ends. */
const IDLE_MS = 5_000

const idle = new Map<Worker, NodeJS.Timeout>()

/** A thread for a region: a waiting one if there is one, else a new one. */
export function takeThread(data: PagerStartData): Worker {
  for (const [worker, timer] of idle) {
    idle.delete(worker)
    clearTimeout(timer)
    worker.ref()
    // A thread's process.env is a copy made when it started: give it today's.
    worker.postMessage({ op: 'start', data, env: { ...process.env } })
    return worker
  }
  const entry = new URL('./worker.js', import.meta.url)
  // A worker inherits the process's flags, and under --input-type (node -e)
  // refuses to start from a file; an eval'd import() is string input, valid
  // as CommonJS and as ESM. (An explicit execArgv instead would reject
  // process-wide flags such as --max-old-space-size.)
  const stringEntry = process.execArgv.some((arg) => arg.startsWith('--input-type'))
  const worker = new Worker(stringEntry ? `import(${JSON.stringify(entry.href)})` : entry, {
    eval: stringEntry,
    workerData: data,
    // The pager's own stack and heap; it never runs user code on the fault path.
    name: 'faultline-pager',
  })
  worker.once('exit', () => forget(worker))
  return worker
}

/** A region closed: its thread waits for the next region, or ends. */
export function giveBack(worker: Worker, reusable: boolean): void {
  if (worker.threadId === -1) return
  if (!reusable || idle.size >= MAX_IDLE) {
    retire(worker)
    return
  }
  worker.unref()
  const timer = setTimeout(() => {
    idle.delete(worker)
    retire(worker)
  }, IDLE_MS)
  timer.unref()
  idle.set(worker, timer)
}

/**
 * Ends every pager thread kept waiting for a region, at once (they end by
 * themselves after 5 s idle), and returns the memory they freed to the
 * system. For a process that wants the memory back now, or a test that
 * counts threads, descriptors and resident memory.
 */
export async function releasePagerThreads(): Promise<void> {
  const waiting = [...idle.keys()]
  await Promise.all(
    waiting.map((worker) => {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
      // Awaited: an unref'd thread's exit would not keep the loop alive until it comes.
      worker.ref()
      forget(worker)
      retire(worker)
      return exited
    }),
  )
  // Their heaps are freed by now; hand the arenas' free memory back too.
  native.trimMemory()
}

function forget(worker: Worker): void {
  const timer = idle.get(worker)
  if (timer !== undefined) clearTimeout(timer)
  idle.delete(worker)
}

function retire(worker: Worker): void {
  worker.postMessage({ op: 'retire' })
}
