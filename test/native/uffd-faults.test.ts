// Real faults: one thread touches registered memory and sleeps in the kernel,
// another thread serves it. Every test arms a watchdog that unregisters the
// range after a few seconds (waking the sleeper with zero pages), so a bug
// fails the test instead of hanging it.
import { closeSync, openSync, readFileSync, rmSync, writeSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { constants, FEATURE_BITS, native } from '@faultline/native'
import {
  PAGE,
  SERVE_WITH_WATCH,
  exitCode,
  nextMessage,
  pattern,
  pollSync,
  region,
  startWorker,
  watchdog,
  type SeenMessage,
} from './helpers.js'

const MISSING = constants.UFFDIO_REGISTER_MODE_MISSING
const WP = constants.UFFDIO_REGISTER_MODE_WP
const PAGEFAULT = constants.UFFD_EVENT_PAGEFAULT

describe('faults served by a worker thread', () => {
  it('the main thread reads missing pages; a worker serves them with uffdCopy', async () => {
    const pages = 4
    const seed = 5
    const r = region(pages, MISSING)
    const server = startWorker(SERVE_WITH_WATCH, { fd: r.fd, base: r.base, length: r.length, seed, PAGE })
    const exited = exitCode(server, 15_000)
    try {
      await nextMessage(server, 'ready')
      const dog = watchdog(r.fd, r.base, r.length)
      await dog.ready
      const view = new Uint8Array(native.externalBuffer(r.base, r.length))
      const first = view[PAGE + 10] // sleeps in the kernel until the worker copies page 1
      const all = view.slice() // faults pages 0, 2, 3 in turn
      await dog.cancel()
      expect(dog.fired()).toBe(false)

      const expected = pattern(pages, seed)
      expect(first).toBe(expected[PAGE + 10])
      expect(all).toEqual(expected)

      server.postMessage('stop')
      const { seen } = (await nextMessage(server, 'done')) as unknown as { seen: SeenMessage[] }
      const faults = seen.filter((m) => m.event === PAGEFAULT)
      expect(faults.map((m) => m.address)).toEqual([1, 0, 2, 3].map((p) => r.base + p * PAGE))
      // reads: no WRITE flag; without EXACT_ADDRESS the address is page-aligned
      expect(faults.every((m) => m.flags === 0 && m.result === PAGE)).toBe(true)
      native.detachBuffer(view.buffer)
      expect(await exited).toBe(0) // stop() closed the poll handle: nothing keeps the worker alive
    } finally {
      await server.terminate()
      r.dispose()
    }
  })

  it('a kernel access (write(2) from a missing page) is served too', async () => {
    const pages = 2
    const seed = 11
    const r = region(pages, MISSING)
    const dir = mkdtempSync(join(tmpdir(), 'faultline-native-'))
    const file = join(dir, 'out.bin')
    const server = startWorker(SERVE_WITH_WATCH, { fd: r.fd, base: r.base, length: r.length, seed, PAGE })
    try {
      await nextMessage(server, 'ready')
      const dog = watchdog(r.fd, r.base, r.length)
      await dog.ready
      const view = new Uint8Array(native.externalBuffer(r.base, r.length))
      const out = openSync(file, 'w')
      // copy_from_user in the kernel faults on each missing page; this thread
      // sleeps inside write(2) until the worker fills it
      const written = writeSync(out, view)
      closeSync(out)
      await dog.cancel()
      expect(dog.fired()).toBe(false)
      expect(written).toBe(r.length)
      expect(new Uint8Array(readFileSync(file))).toEqual(pattern(pages, seed))

      server.postMessage('stop')
      const { seen } = (await nextMessage(server, 'done')) as unknown as { seen: SeenMessage[] }
      expect(seen.filter((m) => m.event === PAGEFAULT).length).toBe(pages)
      native.detachBuffer(view.buffer)
    } finally {
      await server.terminate()
      r.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('write-protect faults', () => {
  it('a write to a protected page arrives as WRITE|WP and unprotecting wakes the writer', async () => {
    const r = region(1, MISSING | WP, FEATURE_BITS.PAGEFAULT_FLAG_WP)
    const src = pattern(1, 2)
    expect(native.uffdCopy(r.fd, r.base, src, 0, PAGE, 0)).toBe(PAGE)
    native.uffdWriteProtect(r.fd, r.base, PAGE, constants.UFFDIO_WRITEPROTECT_MODE_WP)
    // the writer is the worker; this thread serves with uffdRead
    const writer = startWorker(
      `
      const view = new Uint8Array(native.externalBuffer(workerData.base, workerData.PAGE));
      parentPort.postMessage({ type: 'writing' });
      view[100] = 0xab; // sleeps until the page is unprotected
      parentPort.postMessage({ type: 'written', value: view[100] });
      native.detachBuffer(view.buffer);
      `,
      { base: r.base, PAGE },
    )
    const exited = exitCode(writer, 15_000)
    const writing = nextMessage(writer, 'writing')
    const dog = watchdog(r.fd, r.base, r.length)
    try {
      await dog.ready
      await writing
      const out = new Float64Array(8)
      const n = pollSync(() => native.uffdRead(r.fd, out), (count) => count === 0)
      expect(n).toBe(1)
      expect(out[0]).toBe(PAGEFAULT)
      expect(out[1]).toBe(constants.UFFD_PAGEFAULT_FLAG_WRITE | constants.UFFD_PAGEFAULT_FLAG_WP) // 3
      expect(out[2]).toBe(r.base)

      // reads never fault on a WP page: the old byte is still there
      const view = new Uint8Array(native.externalBuffer(r.base, PAGE))
      expect(view[100]).toBe(src[100])

      const written = nextMessage(writer, 'written')
      native.uffdWriteProtect(r.fd, r.base, PAGE, 0) // disarm + wake
      expect((await written).value).toBe(0xab)
      expect(view[100]).toBe(0xab)
      expect(dog.fired()).toBe(false)
      native.detachBuffer(view.buffer)
      expect(await exited).toBe(0)
    } finally {
      await dog.cancel()
      await writer.terminate()
      r.dispose()
    }
  })
})

describe('EAGAIN while an event is pending', () => {
  it('with a REMOVE event queued but unread, fills return -EAGAIN; after reading it they succeed', async () => {
    const r = region(2, MISSING, FEATURE_BITS.EVENT_REMOVE)
    const src = pattern(2, 7)
    expect(native.uffdCopy(r.fd, r.base, src, 0, PAGE, 0)).toBe(PAGE)
    const go = new Int32Array(new SharedArrayBuffer(4))
    // madvise(DONTNEED) queues UFFD_EVENT_REMOVE and sleeps until it is read,
    // so it must run on another thread than the reader (this one)
    const evictor = startWorker(
      `
      parentPort.postMessage({ type: 'ready' });
      Atomics.wait(workerData.go, 0, 0, 5000);
      native.madvise(workerData.address, workerData.PAGE, constants.MADV_DONTNEED);
      parentPort.postMessage({ type: 'returned' });
      `,
      { go, address: r.base + PAGE, PAGE },
    )
    const exited = exitCode(evictor, 15_000)
    try {
      await nextMessage(evictor, 'ready')
      const returned = nextMessage(evictor, 'returned')
      Atomics.store(go, 0, 1)
      Atomics.notify(go, 0)
      // page 0 is populated: EEXIST until the event is queued, then EAGAIN
      // (the kernel checks mmap_changing before looking at the page)
      const blocked = pollSync(() => native.uffdCopy(r.fd, r.base, src, 0, PAGE, 0), (v) => v === -17)
      expect(blocked).toBe(-constants.EAGAIN)
      expect(native.uffdCopy(r.fd, r.base + PAGE, src, PAGE, PAGE, 0)).toBe(-11)
      expect(native.uffdZeropage(r.fd, r.base + PAGE, PAGE, 0)).toBe(-11)
      native.uffdWake(r.fd, r.base, r.length) // WAKE still works

      const out = new Float64Array(16)
      expect(native.uffdRead(r.fd, out)).toBe(1)
      expect(Array.from(out.subarray(0, 4))).toEqual([
        constants.UFFD_EVENT_REMOVE,
        r.base + PAGE,
        r.base + 2 * PAGE,
        0,
      ])
      await returned
      // mmap_changing drops once the evictor wakes up; retry until then
      const done = pollSync(() => native.uffdCopy(r.fd, r.base + PAGE, src, PAGE, PAGE, 0), (v) => v === -11)
      expect(done).toBe(PAGE)
      expect(await exited).toBe(0)
    } finally {
      // closing the uffd also releases an evictor still waiting for its event
      r.dispose()
      await evictor.terminate()
    }
  })
})
