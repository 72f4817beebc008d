// Helpers for the native-layer tests: worker threads that load the addon, a
// watchdog that unblocks a thread stuck in a userfault, and bounded waits.
//
// A thread that touches a missing page sleeps in the kernel until the page is
// filled, so a fault is always served by a different thread than the one that
// touches, and the serving thread never touches registered memory itself.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { native } from '@faultline/native'

const require = createRequire(import.meta.url)
/** file: URL of @faultline/native's entry, for `import()` inside eval workers. */
export const nativeUrl = pathToFileURL(require.resolve('@faultline/native')).href

export const PAGE = native.constants.SYSTEM_PAGE_SIZE as number

/**
 * Starts an eval worker. `body` is the body of an async function that sees
 * `native` (the addon), `constants`, `workerData` and `parentPort`. The worker
 * posts `{ type: 'error', message }` if the body throws.
 */
export function startWorker(body: string, workerData: Record<string, unknown> = {}): Worker {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { native, constants } = await import(workerData.nativeUrl);
      ${body}
    })().catch((err) => {
      parentPort.postMessage({ type: 'error', message: String(err && err.stack || err) });
      throw err;
    });
  `
  return new Worker(code, { eval: true, workerData: { nativeUrl, ...workerData } })
}

export interface WorkerMessage {
  type: string
  [key: string]: unknown
}

/** The next message of `type` from the worker; rejects after `ms`, on 'error' messages, or on exit. */
export function nextMessage(worker: Worker, type: string, ms = 5000): Promise<WorkerMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`timed out after ${ms} ms waiting for worker message '${type}'`))
    }, ms)
    const onMessage = (m: WorkerMessage) => {
      if (m?.type === type) {
        cleanup()
        resolve(m)
      } else if (m?.type === 'error') {
        cleanup()
        reject(new Error(`worker failed: ${String(m.message)}`))
      }
    }
    const onExit = (code: number) => {
      cleanup()
      reject(new Error(`worker exited with code ${code} before sending '${type}'`))
    }
    const onError = (err: Error) => {
      cleanup()
      reject(err)
    }
    const cleanup = () => {
      clearTimeout(timer)
      worker.off('message', onMessage)
      worker.off('exit', onExit)
      worker.off('error', onError)
    }
    worker.on('message', onMessage)
    worker.on('exit', onExit)
    worker.on('error', onError)
  })
}

/** Resolves with the worker's exit code; rejects after `ms`. */
export function exitCode(worker: Worker, ms = 5000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not exit within ${ms} ms`)), ms)
    worker.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
}

/**
 * Guards a test that blocks a thread in a userfault: if not cancelled within
 * `ms`, a separate worker unregisters the range, which wakes every waiter with
 * a zero-filled page, so a bug fails the test instead of hanging the process.
 */
export interface Watchdog {
  /** Resolves once the watchdog worker is running. */
  ready: Promise<void>
  /** True if it had to fire. */
  fired(): boolean
  cancel(): Promise<void>
}

export function watchdog(fd: number, address: number, length: number, ms = 5000): Watchdog {
  const signal = new Int32Array(new SharedArrayBuffer(8))
  const worker = startWorker(
    `
    const sig = workerData.signal;
    parentPort.postMessage({ type: 'ready' });
    if (Atomics.wait(sig, 0, 0, workerData.ms) === 'timed-out') {
      Atomics.store(sig, 1, 1);
      try { native.uffdUnregister(workerData.fd, workerData.address, workerData.length); } catch {}
    }
    `,
    { signal, fd, address, length, ms },
  )
  const exited = exitCode(worker, ms + 5000)
  return {
    ready: nextMessage(worker, 'ready').then(() => undefined),
    fired: () => Atomics.load(signal, 1) === 1,
    async cancel() {
      Atomics.store(signal, 0, 1)
      Atomics.notify(signal, 0)
      await exited
    },
  }
}

/** Sleeps the calling thread (no event loop turn). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Calls `fn` until it returns something other than `retryOn`, sleeping 1 ms between tries, for at most `ms`. */
export function pollSync<T>(fn: () => T, retryOn: (value: T) => boolean, ms = 5000): T {
  const deadline = Date.now() + ms
  for (;;) {
    const value = fn()
    if (!retryOn(value) || Date.now() > deadline) return value
    sleepSync(1)
  }
}

/** A recognisable byte pattern: byte i of page p is (p * 31 + i * 7 + seed) & 0xff. */
export function pattern(pages: number, seed = 1): Uint8Array {
  const out = new Uint8Array(pages * PAGE)
  for (let p = 0; p < pages; p++) {
    for (let i = 0; i < PAGE; i++) out[p * PAGE + i] = (p * 31 + i * 7 + seed) & 0xff
  }
  return out
}

/** The fd and mapping of one registered test region; dispose() cleans both up. */
export interface Region {
  fd: number
  base: number
  length: number
  dispose(): void
}

/** A fresh uffd (with `features`) and a mapping of `pages` registered with `mode`. */
export function region(pages: number, mode: number, features = 0): Region {
  const { fd } = native.uffdOpen(features, false)
  const length = pages * PAGE
  const base = native.mapAnonymous(length)
  native.uffdRegister(fd, base, length, mode)
  return {
    fd,
    base,
    length,
    dispose() {
      try {
        native.uffdUnregister(fd, base, length)
      } catch {
        // already gone
      }
      native.closeFd(fd)
      native.retireMapping(base)
    },
  }
}

/**
 * Worker body that serves MISSING faults on workerData {fd, base, length, seed}
 * from `pattern(length / PAGE, seed)` using watch(), and on 'stop' posts
 * `{ type: 'done', seen }` (every decoded message and copy result) and exits.
 */
export const SERVE_WITH_WATCH = `
  const { fd, base, length, seed, PAGE } = workerData;
  const src = new Uint8Array(length);
  for (let p = 0; p < length / PAGE; p++)
    for (let i = 0; i < PAGE; i++) src[p * PAGE + i] = (p * 31 + i * 7 + seed) & 0xff;
  const seen = [];
  const watcher = native.watch(fd, 8, (count, m) => {
    if (count < 0) { seen.push({ error: count }); return; }
    for (let k = 0; k < count; k++) {
      const ev = m[4 * k], flags = m[4 * k + 1], addr = m[4 * k + 2];
      const entry = { event: ev, flags, address: addr, result: null };
      seen.push(entry);
      if (ev === constants.UFFD_EVENT_PAGEFAULT) {
        const page = addr - (addr % PAGE);
        entry.result = native.uffdCopy(fd, page, src, page - base, PAGE, 0);
        if (entry.result === -constants.EEXIST) native.uffdWake(fd, page, PAGE);
      }
    }
  });
  parentPort.on('message', (msg) => {
    if (msg !== 'stop') return;
    watcher.stop();
    parentPort.postMessage({ type: 'done', seen });
    parentPort.close();
  });
  parentPort.postMessage({ type: 'ready' });
`

export interface SeenMessage {
  event: number
  flags: number
  address: number
  result: number | null
}
