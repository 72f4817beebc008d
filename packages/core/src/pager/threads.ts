/**
 * Pager threads are shared by regions: opening a region costs a message to
 * a running thread (and the region's syscalls), not a thread start and a
 * module load (~50 ms here, and a 32-region burst took a second of it).
 *
 * A process keeps at most `SHARED_THREADS` shared threads, one per core:
 * a region goes to a thread serving nothing, else to a new thread while
 * there are fewer, else to the thread serving the fewest regions. A region
 * that wants a thread to itself (`pagerThread: 'own'`, and every peer of
 * `faultline serve`) gets a fresh one, which ends with its region.
 *
 * What sharing gives up: regions on one thread share its event loop (one
 * region's pager work delays another's faults) and its fate (a bug that
 * kills the thread turns every fault of its regions into SIGBUS; backend
 * errors stay with their region). Threads serving nothing are unref'd (they
 * never keep the process alive) and end after IDLE_MS.
 */
import { availableParallelism } from 'node:os'
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads'
import { native } from '@faultline/native'
import type { PagerStartData } from './protocol.js'

/** Most shared threads: one per core (the pager is CPU work once the bytes arrive). */
const SHARED_THREADS = Math.max(1, availableParallelism())
/** How long a thread serving nothing waits for a region before it ends. */
const IDLE_MS = 5_000

interface Thread {
  readonly worker: Worker
  /** Regions it serves now (including ones still opening). */
  regions: number
  /** Serves one region only, and ends with it. */
  readonly own: boolean
  /** Takes no new region: its backend left sockets behind, and it ends once it serves nothing. */
  retiring: boolean
  idleTimer: NodeJS.Timeout | undefined
}

const threads = new Map<Worker, Thread>()

/** A thread for a region, and the port the region talks to its pager over. */
export function takeThread(data: PagerStartData, own: boolean): { worker: Worker; port: MessagePort } {
  const thread = own ? startThread(true) : chooseShared()
  if (thread.idleTimer !== undefined) clearTimeout(thread.idleTimer)
  thread.idleTimer = undefined
  thread.regions++
  thread.worker.ref()
  const { port1, port2 } = new MessageChannel()
  // A thread's process.env is a copy made when it started: give it today's.
  thread.worker.postMessage({ op: 'start', data, port: port2, env: { ...process.env } }, [port2])
  return { worker: thread.worker, port: port1 }
}

/** A region closed (or failed to open): its thread serves its other regions, waits for the next, or ends. */
export function giveBack(worker: Worker, reusable: boolean): void {
  const thread = threads.get(worker)
  if (thread === undefined) return // it ended
  thread.regions--
  if (!reusable) thread.retiring = true
  if (thread.regions > 0) return
  if (thread.own || thread.retiring) {
    retire(thread)
    return
  }
  worker.unref()
  thread.idleTimer = setTimeout(() => retire(thread), IDLE_MS)
  thread.idleTimer.unref()
}

/**
 * Ends every pager thread serving no region, at once (they end by
 * themselves after 5 s idle), and returns the memory they freed to the
 * system. For a process that wants the memory back now, or a test that
 * counts threads, descriptors and resident memory.
 */
export async function releasePagerThreads(): Promise<void> {
  const waiting = [...threads.values()].filter((t) => t.regions === 0)
  await Promise.all(
    waiting.map((thread) => {
      const exited = new Promise<void>((resolve) => thread.worker.once('exit', () => resolve()))
      retire(thread)
      // Awaited: an unref'd thread's exit would not keep the loop alive until it comes.
      thread.worker.ref()
      return exited
    }),
  )
  // Their heaps are freed by now; hand the arenas' free memory back too.
  native.trimMemory()
}

function chooseShared(): Thread {
  const shared = [...threads.values()].filter((t) => !t.own && !t.retiring)
  const empty = shared.find((t) => t.regions === 0)
  if (empty !== undefined) return empty
  if (shared.length < SHARED_THREADS) return startThread(false)
  return shared.reduce((least, t) => (t.regions < least.regions ? t : least))
}

function startThread(own: boolean): Thread {
  const entry = new URL('./worker.js', import.meta.url)
  // A worker inherits the process's flags, and under --input-type (node -e)
  // refuses to start from a file; an eval'd import() is string input, valid
  // as CommonJS and as ESM. (An explicit execArgv instead would reject
  // process-wide flags such as --max-old-space-size.)
  const stringEntry = process.execArgv.some((arg) => arg.startsWith('--input-type'))
  const worker = new Worker(stringEntry ? `import(${JSON.stringify(entry.href)})` : entry, {
    eval: stringEntry,
    // The pager's own stack and heap; it never runs user code on the fault path.
    name: 'faultline-pager',
  })
  // Each region served listens for the thread's end.
  worker.setMaxListeners(0)
  const thread: Thread = { worker, regions: 0, own, retiring: false, idleTimer: undefined }
  threads.set(worker, thread)
  worker.once('exit', () => {
    if (thread.idleTimer !== undefined) clearTimeout(thread.idleTimer)
    threads.delete(worker)
  })
  return thread
}

function retire(thread: Thread): void {
  if (thread.idleTimer !== undefined) clearTimeout(thread.idleTimer)
  thread.idleTimer = undefined
  // Gone from the choice at once: the thread ends when its port closes (or
  // at once, if a backend left sockets behind), and never keeps the process alive meanwhile.
  thread.retiring = true
  thread.worker.unref()
  thread.worker.postMessage({ op: 'retire' })
}
