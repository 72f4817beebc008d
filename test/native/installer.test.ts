// createInstaller(): a native thread that installs pages with UFFDIO_COPY and
// reports [token, result] pairs back on this thread's event loop.
import { constants as osConstants } from 'node:os'
import { describe, expect, it } from 'vitest'
import { constants, native, type Installer } from '@faultline/native'
import { PAGE, nextMessage, pattern, region, startWorker, watchdog } from './helpers.js'

const MISSING = constants.UFFDIO_REGISTER_MODE_MISSING

/** An installer on `fd` whose results pile up in `results`, with a way to wait for the next n of them. */
function recordingInstaller(fd: number) {
  const results: Array<[token: number, result: number]> = []
  const installer = native.createInstaller(fd, (count, pairs) => {
    for (let k = 0; k < count; k++) results.push([pairs[2 * k]!, pairs[2 * k + 1]!])
  })
  async function until(n: number): Promise<Array<[number, number]>> {
    const deadline = Date.now() + 5000
    while (results.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${results.length} of ${n} installs reported`)
      await new Promise((r) => setTimeout(r, 2))
    }
    return results.slice(0, n)
  }
  return { installer, results, until }
}

function page(bytes: Uint8Array, p: number): Uint8Array {
  return bytes.subarray(p * PAGE, (p + 1) * PAGE)
}

describe('native installer thread', () => {
  it('installs pages nobody faulted on (1), and reports 0 for a page already present (EEXIST)', async () => {
    const r = region(4, MISSING)
    const data = pattern(4, 3)
    const { installer, until } = recordingInstaller(r.fd)
    try {
      installer.install(r.base, page(data, 0), 0, 100)
      installer.install(r.base + PAGE, page(data, 1), 0, 101)
      expect(await until(2)).toEqual([
        [100, 1],
        [101, 1],
      ])
      installer.install(r.base, page(data, 1), 0, 102)
      expect((await until(3))[2]).toEqual([102, 0])
      // Both pages are present now, so this thread can read them without faulting.
      const view = new Uint8Array(native.externalBuffer(r.base, 2 * PAGE))
      expect(Buffer.compare(view, data.subarray(0, 2 * PAGE))).toBe(0)
      native.detachBuffer(view.buffer)
    } finally {
      installer.stop()
      r.dispose()
    }
  })

  it('wakes a thread asleep in a fault on the page it installs', async () => {
    const r = region(2, MISSING)
    const data = pattern(2, 5)
    const dog = watchdog(r.fd, r.base, r.length)
    await dog.ready
    const { installer, until } = recordingInstaller(r.fd)
    // The fault is read (and left unanswered) so we know the worker sleeps in it.
    let faults = 0
    const watcher = native.watch(r.fd, 4, (count) => void (faults += count))
    const worker = startWorker(
      `
      const view = new Uint8Array(native.externalBuffer(workerData.base, workerData.length));
      const value = view[workerData.PAGE + 7];
      native.detachBuffer(view.buffer);
      parentPort.postMessage({ type: 'value', value });
      `,
      { base: r.base, length: r.length, PAGE },
    )
    try {
      const deadline = Date.now() + 5000
      while (faults === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 2))
      expect(faults).toBe(1)
      installer.install(r.base + PAGE, page(data, 1), 0, 1)
      const { value } = await nextMessage(worker, 'value')
      expect(value).toBe(data[PAGE + 7])
      expect(await until(1)).toEqual([[1, 1]])
      expect(dog.fired()).toBe(false)
    } finally {
      watcher.stop()
      installer.stop()
      await dog.cancel()
      await worker.terminate()
      r.dispose()
    }
  })

  it('reports -ENOENT for a range not registered on its uffd, and installs nothing', async () => {
    const r = region(1, MISSING)
    const other = native.mapAnonymous(PAGE)
    const { installer, until } = recordingInstaller(r.fd)
    try {
      installer.install(other, pattern(1, 9), 0, 7)
      expect(await until(1)).toEqual([[7, -osConstants.errno.ENOENT]])
      // Not registered, so reading it is an ordinary first touch: zeros, not the pattern.
      const view = new Uint8Array(native.externalBuffer(other, PAGE))
      expect(view.every((b) => b === 0)).toBe(true)
      native.detachBuffer(view.buffer)
    } finally {
      installer.stop()
      native.retireMapping(other)
      r.dispose()
    }
  })

  it('refuses bad arguments by name, and any install once stopped', () => {
    const r = region(1, MISSING)
    let installer: Installer | undefined
    try {
      expect(() => native.createInstaller(-1, () => undefined)).toThrow(/fd/)
      expect(() => native.createInstaller(r.fd, undefined as never)).toThrow(/onDone must be a function/)
      installer = native.createInstaller(r.fd, () => undefined)
      const one = new Uint8Array(PAGE)
      expect(() => installer!.install(r.base + 1, one, 0, 1)).toThrow(/page-aligned/)
      expect(() => installer!.install(r.base, new Uint8Array(PAGE - 1), 0, 1)).toThrow(/whole number of/)
      expect(() => installer!.install(r.base, new Float64Array(PAGE / 8) as never, 0, 1)).toThrow(/bytes must be a Uint8Array/)
      expect(() => installer!.install(r.base, one, 0, 'x' as never)).toThrow(/token must be a number/)
      installer.stop()
      installer.stop()
      expect(() => installer!.install(r.base, one, 0, 1)).toThrow(/stopped/)
    } finally {
      installer?.stop()
      r.dispose()
    }
  })
})
