// watch(): uv_poll on the calling thread's loop, stop(), and teardown of a
// Worker that never called stop() (the env cleanup hook must close the handle,
// otherwise Node aborts when the worker's loop is closed).
import { openSync, closeSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { constants, isNativeError, native } from '@faultline/native'
import { PAGE, exitCode, nextMessage, pattern, region, startWorker, watchdog } from './helpers.js'

const MISSING = constants.UFFDIO_REGISTER_MODE_MISSING

describe('watch', () => {
  it('on the main thread: serves a fault taken by a worker', async () => {
    const r = region(2, MISSING)
    const src = pattern(2, 21)
    const calls: number[][] = []
    const watcher = native.watch(r.fd, 4, (count, messages) => {
      expect(messages).toBeInstanceOf(Float64Array)
      expect(messages.length).toBe(16)
      for (let k = 0; k < count; k++) {
        const address = messages[4 * k + 2]!
        calls.push(Array.from(messages.subarray(4 * k, 4 * k + 4)))
        const page = address - (address % PAGE)
        native.uffdCopy(r.fd, page, src, page - r.base, PAGE, 0)
      }
    })
    const toucher = startWorker(
      `
      const view = new Uint8Array(native.externalBuffer(workerData.base, 2 * workerData.PAGE));
      const value = view[workerData.PAGE + 1]; // faults page 1
      parentPort.postMessage({ type: 'touched', value });
      native.detachBuffer(view.buffer);
      `,
      { base: r.base, PAGE },
    )
    const touched = nextMessage(toucher, 'touched')
    const dog = watchdog(r.fd, r.base, r.length)
    try {
      await dog.ready
      const { value } = await touched
      expect(value).toBe(src[PAGE + 1])
      expect(calls).toEqual([[constants.UFFD_EVENT_PAGEFAULT, 0, r.base + PAGE, 0]])
      expect(dog.fired()).toBe(false)
    } finally {
      watcher.stop()
      watcher.stop() // idempotent
      await dog.cancel()
      await toucher.terminate()
      r.dispose()
    }
  })

  it('serves concurrent faults from several workers, in batches of at most `capacity`', async () => {
    const workers = 3
    const pagesEach = 64
    const r = region(workers * pagesEach, MISSING)
    const src = pattern(workers * pagesEach, 13)
    let messages = 0
    let maxBatch = 0
    let eexist = 0
    const watcher = native.watch(r.fd, 4, (count, m) => {
      expect(count).toBeGreaterThan(0)
      maxBatch = Math.max(maxBatch, count)
      for (let k = 0; k < count; k++) {
        messages++
        const address = m[4 * k + 2]!
        const page = address - (address % PAGE)
        const res = native.uffdCopy(r.fd, page, src, page - r.base, PAGE, 0)
        if (res === -17) {
          eexist++
          native.uffdWake(r.fd, page, PAGE)
        } else {
          expect(res).toBe(PAGE)
        }
      }
    })
    const touchers = Array.from({ length: workers }, (_, w) =>
      startWorker(
        `
        const { base, PAGE, first, count } = workerData;
        const view = new Uint8Array(native.externalBuffer(base + first * PAGE, count * PAGE));
        let sum = 0;
        for (let p = 0; p < count; p++) sum += view[p * PAGE + 5];
        parentPort.postMessage({ type: 'sum', sum });
        native.detachBuffer(view.buffer);
        `,
        { base: r.base, PAGE, first: w * pagesEach, count: pagesEach },
      ),
    )
    const sums = touchers.map((t) => nextMessage(t, 'sum', 10_000))
    const dog = watchdog(r.fd, r.base, r.length, 10_000)
    try {
      await dog.ready
      const got = await Promise.all(sums)
      for (let w = 0; w < workers; w++) {
        let expected = 0
        for (let p = 0; p < pagesEach; p++) expected += src[(w * pagesEach + p) * PAGE + 5]!
        expect(got[w]!.sum).toBe(expected)
      }
      expect(dog.fired()).toBe(false)
      expect(messages - eexist).toBe(workers * pagesEach)
      expect(maxBatch).toBeLessThanOrEqual(4)
    } finally {
      watcher.stop()
      await dog.cancel()
      await Promise.all(touchers.map((t) => t.terminate()))
      r.dispose()
    }
  })

  it('stop() closes the handle: a worker that stops exits by itself', async () => {
    const r = region(1, MISSING)
    const worker = startWorker(
      `
      let calls = 0;
      const w = native.watch(workerData.fd, 1, () => { calls++; });
      setTimeout(() => { w.stop(); w.stop(); parentPort.postMessage({ type: 'stopped', calls }); }, 20);
      `,
      { fd: r.fd },
    )
    const exited = exitCode(worker)
    try {
      expect((await nextMessage(worker, 'stopped')).calls).toBe(0)
      expect(await exited).toBe(0)
    } finally {
      await worker.terminate()
      r.dispose()
    }
  })

  it('a watching worker that calls process.exit() without stop() exits cleanly', async () => {
    const r = region(1, MISSING)
    const second = native.uffdOpen(0, false)
    const worker = startWorker(
      `
      native.watch(workerData.fd, 8, () => {});
      native.watch(workerData.fd2, 8, () => {});
      setTimeout(() => process.exit(0), 20);
      `,
      { fd: r.fd, fd2: second.fd },
    )
    try {
      expect(await exitCode(worker)).toBe(0)
    } finally {
      native.closeFd(second.fd)
      r.dispose()
    }
  })

  it('a watching worker that is terminate()d is torn down without an abort', async () => {
    const r = region(1, MISSING)
    const worker = startWorker(
      `
      native.watch(workerData.fd, 8, () => {});
      parentPort.postMessage({ type: 'watching' });
      `,
      { fd: r.fd },
    )
    try {
      await nextMessage(worker, 'watching')
      expect(await worker.terminate()).toBe(1) // terminate()'s usual code; an abort would kill this process
    } finally {
      r.dispose()
    }
  })

  it('an exception thrown by the callback reaches the worker\'s error event', async () => {
    const r = region(1, MISSING)
    const server = startWorker(
      `
      const src = new Uint8Array(workerData.PAGE).fill(0x77);
      native.watch(workerData.fd, 4, (count, m) => {
        native.uffdCopy(workerData.fd, m[2] - (m[2] % workerData.PAGE), src, 0, workerData.PAGE, 0);
        throw new Error('boom from the watch callback');
      });
      parentPort.postMessage({ type: 'ready' });
      `,
      { fd: r.fd, PAGE },
    )
    const failed = new Promise<Error>((resolve) => server.once('error', resolve))
    const exited = exitCode(server)
    try {
      await nextMessage(server, 'ready')
      const dog = watchdog(r.fd, r.base, r.length)
      await dog.ready
      const view = new Uint8Array(native.externalBuffer(r.base, PAGE))
      expect(view[0]).toBe(0x77) // served before the callback threw
      await dog.cancel()
      expect(dog.fired()).toBe(false)
      expect((await failed).message).toBe('boom from the watch callback')
      expect(await exited).toBe(1)
      native.detachBuffer(view.buffer)
    } finally {
      await server.terminate()
      r.dispose()
    }
  })

  it('validates its arguments; a regular file cannot be polled', () => {
    const r = region(1, MISSING)
    const dir = mkdtempSync(join(tmpdir(), 'faultline-native-'))
    const file = join(dir, 'f')
    writeFileSync(file, 'x')
    const fd = openSync(file, 'r')
    try {
      expect(() => native.watch(r.fd, 0, () => {})).toThrow(RangeError)
      expect(() => native.watch(r.fd, 4, 'nope' as never)).toThrow(/callback must be a function/)
      try {
        native.watch(fd, 4, () => {})
        expect.unreachable()
      } catch (err) {
        expect(isNativeError(err)).toBe(true)
        expect(err).toMatchObject({ code: 'EPERM', syscall: 'uv_poll_init' })
      }
    } finally {
      closeSync(fd)
      rmSync(dir, { recursive: true, force: true })
      r.dispose()
    }
  })
})
