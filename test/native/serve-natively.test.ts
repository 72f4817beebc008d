// Watcher.serveNatively(): faults on staged pages and on a shared source are
// installed in C++ before the JS callback runs, which still sees each message
// (event WATCH_SERVED) so the pager can keep its books.
import { describe, expect, it } from 'vitest'
import { constants, native, type ServeSlots, type Watcher } from '@faultline/native'
import type { Worker } from 'node:worker_threads'
import { PAGE, nextMessage, pattern, region, sleepSync, startWorker, watchdog, type Region } from './helpers.js'

const MISSING = constants.UFFDIO_REGISTER_MODE_MISSING
const WP = constants.UFFDIO_REGISTER_MODE_WP
// faults, duplicateFaults, pagesFetched, bytesFetched, residentPages, latencyCount, latencyMaxUs, histogram at 10..41, dirtyPages
const SLOTS: ServeSlots = [0, 1, 2, 3, 4, 5, 6, 10, 32, 8, 7, 9]
const [FAULTS, DUPLICATES, FETCHED, BYTES, RESIDENT, LATENCY_COUNT, , , , , DIRTY, SERVED] = SLOTS

interface Seen {
  event: number
  flags: number
  page: number
  arg: number
}

/** A watcher on this thread that records every message and installs what reaches JS from `fallback`. */
function watchRecording(fd: number, base: number, fallback: Uint8Array): { watcher: Watcher; seen: Seen[] } {
  const seen: Seen[] = []
  const watcher = native.watch(fd, 8, (count, m) => {
    for (let k = 0; k < count; k++) {
      const entry = { event: m[4 * k]!, flags: m[4 * k + 1]!, page: Math.floor((m[4 * k + 2]! - base) / PAGE), arg: m[4 * k + 3]! }
      seen.push(entry)
      if (entry.event !== constants.UFFD_EVENT_PAGEFAULT) continue
      const address = base + entry.page * PAGE
      if (entry.flags & constants.UFFD_PAGEFAULT_FLAG_WP) native.uffdWriteProtect(fd, address, PAGE, 0)
      else if (native.uffdCopy(fd, address, fallback, entry.page * PAGE, PAGE, 0) === -constants.EEXIST) native.uffdWake(fd, address, PAGE)
    }
  })
  return { watcher, seen }
}

/**
 * A worker that reads byte 1 of each page in `reads`, in order, and posts the
 * values. With `started`, it sets started[0] to 1 (and notifies) just before
 * its first read, so a test can wait for the read itself rather than guess
 * how long the worker takes to start.
 */
function reader(base: number, pages: number, reads: number[], started?: Int32Array) {
  return startWorker(
    `
    const view = new Uint8Array(native.externalBuffer(workerData.base, workerData.pages * workerData.PAGE));
    if (workerData.started !== undefined) {
      Atomics.store(workerData.started, 0, 1);
      Atomics.notify(workerData.started, 0);
    }
    const values = workerData.reads.map((p) => view[p * workerData.PAGE + 1]);
    native.detachBuffer(view.buffer);
    parentPort.postMessage({ type: 'values', values });
    `,
    { base, pages, reads, PAGE, started },
  )
}

/** Stats cells as the pager has them: over shared memory, which cannot be detached under the watcher. */
function sharedStats(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(64 * 8))
}

function shared(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(new SharedArrayBuffer(bytes.byteLength))
  out.set(bytes)
  return out
}

interface Served {
  r: Region
  watcher: Watcher
  seen: Seen[]
  stats: Float64Array
  /** Workers to terminate when the test ends. */
  workers: Worker[]
}

/** A registered region with a recording watcher serving natively, a watchdog, and cleanup. */
async function withServed(
  setup: { pages: number; mode: number; features?: number; readMode?: number; fallback: Uint8Array },
  body: (s: Served) => Promise<void>,
): Promise<void> {
  const r = region(setup.pages, setup.mode, setup.features ?? 0)
  const stats = sharedStats()
  const { watcher, seen } = watchRecording(r.fd, r.base, setup.fallback)
  watcher.serveNatively(r.base, PAGE, setup.pages, setup.readMode ?? 0, 0, stats, SLOTS)
  const dog = watchdog(r.fd, r.base, r.length)
  const workers: Worker[] = []
  try {
    await dog.ready
    await body({ r, watcher, seen, stats, workers })
    expect(dog.fired()).toBe(false)
  } finally {
    watcher.stop()
    await dog.cancel()
    await Promise.all(workers.map((w) => w.terminate()))
    r.dispose()
  }
}

describe('serveNatively', () => {
  it('installs source pages and staged pages before JS runs, and counts them', async () => {
    const source = shared(pattern(4, 3))
    const staged = pattern(1, 99)
    const fallback = pattern(4, 50)
    await withServed({ pages: 4, mode: MISSING, fallback }, async ({ r, watcher, seen, stats, workers }) => {
      watcher.addSource(0, 2, source) // pages 0 and 1
      watcher.stage(2, staged)
      const worker = reader(r.base, 4, [0, 1, 2, 3])
      workers.push(worker)
      const { values } = await nextMessage(worker, 'values')
      expect(values).toEqual([source[1], source[PAGE + 1], staged[1], fallback[3 * PAGE + 1]])
      expect(seen.map((s) => [s.event, s.page, s.arg])).toEqual([
        [constants.WATCH_SERVED, 0, 1],
        [constants.WATCH_SERVED, 1, 1],
        [constants.WATCH_SERVED, 2, 1],
        [constants.UFFD_EVENT_PAGEFAULT, 3, 0],
      ])
      // Page 3 went to JS: only the three served pages are counted natively.
      expect([stats[FAULTS!], stats[FETCHED!], stats[BYTES!], stats[RESIDENT!], stats[LATENCY_COUNT!], stats[SERVED!]]).toEqual([3, 3, 3 * PAGE, 3, 3, 3])
      expect(watcher.unstage(2)).toBe(false) // a staged page is used once
    })
  })

  it('reports a page that is already present as served with arg 0 (EEXIST), and wakes its faulter', async () => {
    const source = shared(pattern(1, 7))
    await withServed({ pages: 1, mode: MISSING, fallback: pattern(1, 8) }, async ({ r, watcher, seen, stats, workers }) => {
      watcher.addSource(0, 1, source)
      const started = new Int32Array(new SharedArrayBuffer(4))
      const worker = reader(r.base, 1, [0], started)
      workers.push(worker)
      const read = nextMessage(worker, 'values') // listen at once: a message with no listener is lost
      // Hold this thread (and so the watcher) until the fault is queued, then
      // install the page behind the watcher's back without waking anyone. A
      // worker starts in tens of ms, or in seconds on a loaded machine under
      // ASan: wait for it to be about to read, then give the read itself
      // 300 ms to reach the kernel. Had the copy come first, the read would
      // not fault at all and nothing would be reported.
      expect(Atomics.wait(started, 0, 0, 4000), 'the reader worker did not start within 4 s (the watchdog fires at 5)').not.toBe('timed-out')
      sleepSync(300)
      expect(native.uffdCopy(r.fd, r.base, source, 0, PAGE, constants.UFFDIO_COPY_MODE_DONTWAKE)).toBe(PAGE)
      const { values } = await read
      expect(values).toEqual([source[1]])
      expect(seen.map((s) => [s.event, s.arg])).toEqual([[constants.WATCH_SERVED, 0]])
      expect([stats[FAULTS!], stats[DUPLICATES!], stats[FETCHED!], stats[RESIDENT!], stats[SERVED!]]).toEqual([1, 1, 0, 0, 1])
    })
  })

  it('installs with readMode or writeMode by fault kind, and leaves write-protect faults to JS', async () => {
    const source = shared(pattern(2, 5))
    const setup = { pages: 2, mode: MISSING | WP, features: native.constants.UFFD_FEATURE_PAGEFAULT_FLAG_WP as number, readMode: constants.UFFDIO_COPY_MODE_WP, fallback: source }
    await withServed(setup, async ({ r, watcher, seen, stats, workers }) => {
      watcher.addSource(0, 2, source)
      const worker = startWorker(
        `
        const view = new Uint8Array(native.externalBuffer(workerData.base, 2 * workerData.PAGE));
        const before = view[1];
        view[1] = 200;                  // page 0: read-installed with WP, so this write faults again
        view[workerData.PAGE + 1] = 201; // page 1: a missing fault taken by a write, installed writable
        view[workerData.PAGE + 2] = 202;
        const after = [view[1], view[workerData.PAGE + 1]];
        native.detachBuffer(view.buffer);
        parentPort.postMessage({ type: 'done', before, after });
        `,
        { base: r.base, PAGE },
      )
      workers.push(worker)
      const { before, after } = await nextMessage(worker, 'done')
      expect(before).toBe(source[1])
      expect(after).toEqual([200, 201])
      const W = constants.UFFD_PAGEFAULT_FLAG_WRITE
      expect(seen.map((s) => [s.event, s.page, s.flags & (W | constants.UFFD_PAGEFAULT_FLAG_WP)])).toEqual([
        [constants.WATCH_SERVED, 0, 0],
        [constants.UFFD_EVENT_PAGEFAULT, 0, W | constants.UFFD_PAGEFAULT_FLAG_WP],
        [constants.WATCH_SERVED, 1, W],
      ])
      expect(source[1]).toBe(pattern(1, 5)[1]) // the source is copied from, never written
      expect(stats[DIRTY!]).toBe(1) // page 1, counted before its writer could look; page 0's WP fault is JS's to count
    })
  })

  it('rejects bad arguments with errors that name them, and is inert after stop()', () => {
    const r = region(1, MISSING)
    const watcher = native.watch(r.fd, 4, () => {})
    try {
      expect(() => watcher.stage(0, new Uint8Array(PAGE))).toThrow(/serveNatively\(\) first/)
      expect(() => watcher.serveNatively(r.base, PAGE, 1, 0, 0, new Float64Array(new SharedArrayBuffer(64)), SLOTS)).toThrow(/slots must index into stats/)
      expect(() => watcher.serveNatively(r.base, PAGE, 1, 0, 0, sharedStats(), [1, 2] as unknown as ServeSlots)).toThrow(/slots must be an array/)
      expect(() => watcher.serveNatively(r.base, 1000, 1, 0, 0, sharedStats(), SLOTS)).toThrow(/pageSize must be a multiple/)
      expect(() => watcher.serveNatively(r.base, PAGE, 1, 0, 0, new Float64Array(64), SLOTS)).toThrow(/stats must be over a SharedArrayBuffer/)
      const negative = [...SLOTS] as ServeSlots
      negative[0] = -100
      expect(() => watcher.serveNatively(r.base, PAGE, 1, 0, 0, sharedStats(), negative)).toThrow(/slots\[0\] must be a whole number/)
      const wrapping = [...SLOTS] as ServeSlots
      wrapping[7] = 2 ** 32 - 1 // histogram base + buckets wraps around in 32 bits
      expect(() => watcher.serveNatively(r.base, PAGE, 1, 0, 0, sharedStats(), wrapping)).toThrow(/slots must index into stats/)
      watcher.serveNatively(r.base, PAGE, 1, 0, 0, sharedStats(), SLOTS)
      expect(() => watcher.stage(0, new Uint8Array(PAGE - 1))).toThrow(/bytes must be one page/)
      expect(() => watcher.stage(0, new Uint16Array(PAGE / 2) as unknown as Uint8Array)).toThrow(/bytes must be a Uint8Array/)
      expect(() => watcher.addSource(0, 1, new Uint8Array(PAGE))).toThrow(/SharedArrayBuffer/)
      // A detachable buffer dressed up as shared is still refused: the engine is asked, not the object.
      const disguised = new Uint8Array(PAGE)
      Object.defineProperty(disguised, 'buffer', { value: new SharedArrayBuffer(PAGE) })
      expect(() => watcher.addSource(0, 1, disguised)).toThrow(/SharedArrayBuffer/)
      expect(() => watcher.addSource(0, 2, shared(new Uint8Array(PAGE)))).toThrow(/fewer than 2 pages/)
      watcher.stage(0, new Uint8Array(PAGE).fill(9))
      const out = new Uint8Array(PAGE)
      expect(watcher.unstage(0, out)).toBe(true)
      expect(out[0]).toBe(9)
      expect(watcher.unstage(0)).toBe(false)
    } finally {
      watcher.stop()
    }
    watcher.stage(0, new Uint8Array(PAGE))
    expect(watcher.unstage(0)).toBe(false)
    r.dispose()
  })
})
