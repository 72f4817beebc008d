// mapAnonymous / externalBuffer / detachBuffer / retireMapping / madvise on
// plain (unregistered) anonymous memory, and the exactly-once reference
// accounting across detach, GC, retire and worker teardown.
import { setImmediate as tick } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { constants, isNativeError, native } from '@faultline/native'
import { PAGE, exitCode, nextMessage, startWorker } from './helpers.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Waits (turning the event loop) until fn() is true, for at most ms. */
async function until(fn: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!fn()) {
    if (Date.now() > deadline) return false
    await tick()
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return true
}

describe('mapAnonymous and externalBuffer', () => {
  it('maps page-aligned memory, rounds the length up, and counts buffers', () => {
    const base = native.mapAnonymous(PAGE + 1) // rounded up to 2 pages
    try {
      expect(base % PAGE).toBe(0)
      expect(native.mappingRefs(base)).toBe(0)
      const whole = new Uint8Array(native.externalBuffer(base, 2 * PAGE))
      const tail = new Uint8Array(native.externalBuffer(base + PAGE + 10, PAGE - 10))
      expect(native.mappingRefs(base)).toBe(2)
      whole[PAGE + 10] = 42
      expect(tail[0]).toBe(42)
      expect(whole.every((b, i) => b === (i === PAGE + 10 ? 42 : 0))).toBe(true)
      native.detachBuffer(whole.buffer)
      native.detachBuffer(tail.buffer)
      expect(native.mappingRefs(base)).toBe(0)
    } finally {
      native.retireMapping(base)
    }
  })

  it('rejects ranges outside one live mapping with RangeError', () => {
    const base = native.mapAnonymous(2 * PAGE)
    try {
      expect(() => native.externalBuffer(base + 2 * PAGE, 1)).toThrow(RangeError) // just past the end
      expect(() => native.externalBuffer(base + PAGE, PAGE + 1)).toThrow(/not inside one live mapping/) // crosses the end
      expect(() => native.externalBuffer(base - PAGE, PAGE)).toThrow(RangeError)
      expect(() => native.externalBuffer(PAGE, PAGE)).toThrow(RangeError) // never mapped
      expect(() => native.externalBuffer(base, 0)).toThrow(/length must be > 0/)
      expect(() => native.externalBuffer(base, -1)).toThrow(RangeError)
      expect(() => native.mapAnonymous(0)).toThrow(RangeError)
      expect(native.mappingRefs(base)).toBe(0)
      expect(native.mappingRefs(base + PAGE)).toBe(-1) // not the start of a mapping
    } finally {
      native.retireMapping(base)
    }
  })
})

describe('detachBuffer', () => {
  it('empties the views and drops the reference exactly once', async () => {
    const base = native.mapAnonymous(PAGE)
    try {
      const keep = native.externalBuffer(base, PAGE)
      const ab = native.externalBuffer(base, PAGE)
      const view = new Uint8Array(ab)
      expect(native.mappingRefs(base)).toBe(2)
      native.detachBuffer(ab)
      expect(ab.byteLength).toBe(0)
      expect(view.length).toBe(0)
      expect(native.mappingRefs(base)).toBe(1) // synchronously
      // In Node 20 the buffer's finalizer runs anyway, on a later turn of the
      // loop (the detach freed the backing store); it must not count again.
      await tick()
      await new Promise((resolve) => setTimeout(resolve, 20))
      gc()
      await tick()
      expect(native.mappingRefs(base)).toBe(1)
      native.detachBuffer(ab) // already detached: a no-op
      expect(native.mappingRefs(base)).toBe(1)
      native.detachBuffer(keep)
      expect(native.mappingRefs(base)).toBe(0)
    } finally {
      native.retireMapping(base)
    }
  })

  it('rejects buffers it did not make', () => {
    expect(() => native.detachBuffer(new ArrayBuffer(8))).toThrow(/not made by externalBuffer/)
    expect(() => native.detachBuffer(new Uint8Array(8) as never)).toThrow(TypeError)
    expect(() => native.detachBuffer(undefined as never)).toThrow(TypeError)
  })

  it('a collected buffer releases its reference through the finalizer', async () => {
    const base = native.mapAnonymous(PAGE)
    try {
      ;(() => {
        for (let i = 0; i < 3; i++) native.externalBuffer(base, PAGE)
      })()
      expect(native.mappingRefs(base)).toBe(3)
      const released = await until(() => {
        gc()
        return native.mappingRefs(base) === 0
      })
      expect(released).toBe(true)
    } finally {
      native.retireMapping(base)
    }
  })
})

describe('retireMapping', () => {
  it('a stale view reads zeros (no crash); the range is unmapped when the last buffer goes', () => {
    const base = native.mapAnonymous(2 * PAGE)
    const view = new Uint8Array(native.externalBuffer(base, 2 * PAGE))
    view.fill(0x5a)
    native.retireMapping(base)
    expect(native.mappingRefs(base)).toBe(1) // retired, kept mapped for the view
    expect(view.length).toBe(2 * PAGE)
    expect(view.every((b) => b === 0)).toBe(true)
    view[7] = 1 // writable fresh memory, not the old pages
    expect(view[7]).toBe(1)
    expect(() => native.externalBuffer(base, PAGE)).toThrow(/retired/)
    expect(() => native.retireMapping(base)).toThrow(/already retired/)
    native.detachBuffer(view.buffer)
    expect(native.mappingRefs(base)).toBe(-1) // munmapped
    expect(() => native.retireMapping(base)).toThrow(/not the start of a mapping/)
  })

  it('with no buffers the mapping is unmapped at once', () => {
    const base = native.mapAnonymous(PAGE)
    native.retireMapping(base)
    expect(native.mappingRefs(base)).toBe(-1)
  })

  it('a stale view in a worker reads zeros after the main thread retires the mapping', async () => {
    const base = native.mapAnonymous(PAGE)
    const main = new Uint8Array(native.externalBuffer(base, PAGE))
    main.fill(9)
    const signal = new Int32Array(new SharedArrayBuffer(4))
    const worker = startWorker(
      `
      const view = new Uint8Array(native.externalBuffer(workerData.base, workerData.PAGE));
      const before = view[0];
      parentPort.postMessage({ type: 'viewing' });
      Atomics.wait(workerData.signal, 0, 0, 5000);
      parentPort.postMessage({ type: 'after', before, after: view[0], length: view.length });
      `,
      { base, PAGE, signal },
    )
    const exited = exitCode(worker)
    try {
      await nextMessage(worker, 'viewing')
      expect(native.mappingRefs(base)).toBe(2)
      const after = nextMessage(worker, 'after')
      native.retireMapping(base)
      Atomics.store(signal, 0, 1)
      Atomics.notify(signal, 0)
      expect(await after).toMatchObject({ before: 9, after: 0, length: PAGE })
      // the worker's buffer is released at its environment's teardown
      expect(await exited).toBe(0)
      native.detachBuffer(main.buffer)
      expect(await until(() => native.mappingRefs(base) === -1)).toBe(true)
    } finally {
      await worker.terminate()
    }
  })

  it('rejects addresses that are not mappings', () => {
    expect(() => native.retireMapping(PAGE)).toThrow(RangeError)
    expect(() => native.retireMapping(-PAGE)).toThrow(RangeError)
  })
})

describe('madvise', () => {
  it('MADV_DONTNEED drops the pages of an unregistered mapping', () => {
    const base = native.mapAnonymous(2 * PAGE)
    try {
      const view = new Uint8Array(native.externalBuffer(base, 2 * PAGE))
      view.fill(3)
      native.madvise(base, PAGE, constants.MADV_DONTNEED)
      expect(view[0]).toBe(0)
      expect(view[PAGE]).toBe(3)
      native.detachBuffer(view.buffer)
    } finally {
      native.retireMapping(base)
    }
  })

  it('errors name the advice; alignment is checked first', () => {
    const base = native.mapAnonymous(PAGE)
    try {
      expect(() => native.madvise(base + 1, PAGE, constants.MADV_DONTNEED)).toThrow(RangeError)
      try {
        native.madvise(base, PAGE, 12345)
        expect.unreachable()
      } catch (err) {
        expect(isNativeError(err)).toBe(true)
        expect(err).toMatchObject({ code: 'EINVAL', errno: 22, syscall: 'madvise' })
      }
    } finally {
      native.retireMapping(base)
    }
  })
})
