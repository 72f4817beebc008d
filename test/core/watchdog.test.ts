/**
 * A pager that stops answering must not leave anyone hanging: a backend
 * read that never settles fails at the fetch deadline, and a backend call
 * that blocks the pager thread is caught by its native watchdog. The faults
 * here are taken by the kernel on the main thread (fs.writeSync from a view
 * of a missing page), so a failed fault is an EFAULT this test can see
 * rather than the SIGBUS a JS access would get.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion, type Region } from '@faultline/core'
import { kernelCopy } from '../helpers/kernel-copy.js'
import { tempDir } from '../helpers/tmp.js'

const dir = tempDir()
const sink = join(dir, 'sink.bin')
const PAGE = 65536
const PAGES = 16
const backendModule = fileURLToPath(new URL('../fixtures/stalling-backend.mjs', import.meta.url))

function stallingRegion(name: string, stall: 'block' | 'hang', extra: Record<string, unknown>, fetchTimeoutMs: number): Promise<Region> {
  const path = join(dir, `${name}.bin`)
  const bytes = Buffer.alloc(PAGE * PAGES)
  for (let p = 0; p < PAGES; p++) bytes.fill(p + 1, p * PAGE, (p + 1) * PAGE)
  writeFileSync(path, bytes)
  return openRegion({
    size: PAGE * PAGES,
    pageSize: PAGE,
    fetchTimeoutMs,
    writeTracking: 'sync',
    backend: { type: 'module', module: backendModule, options: { path, page: 5, stall, size: PAGE * PAGES, ...extra } },
  })
}

describe('a pager that stops answering', () => {
  it('a backend read that never settles fails at fetchTimeoutMs, for a fault and for region.read()', async () => {
    const region = await stallingRegion('hang', 'hang', {}, 400)
    try {
      const started = performance.now()
      expect(kernelCopy(region.view(5 * PAGE, 16), sink)).toEqual({ ok: false, code: 'EFAULT' })
      const waited = performance.now() - started
      expect(waited).toBeGreaterThanOrEqual(350)
      await expect(region.read(5 * PAGE, 16)).rejects.toMatchObject({ code: 'ERR_BACKEND', message: expect.stringContaining('did not answer within') })
      // Other pages are unaffected.
      expect(region.view(6 * PAGE, 1)[0]).toBe(7)
      expect(region.stats().fetchErrors).toBeGreaterThanOrEqual(1)
    } finally {
      await region.close()
    }
  })

  it('a backend call that blocks the pager thread: the watchdog fails the waiting fault, the region reports it, and writes are not lost', async () => {
    const region = await stallingRegion('block', 'block', { blockMs: 7000 }, 300)
    const path = join(dir, 'block.bin')
    const stalled = new Promise<{ message: string }>((resolve) => region.once('pager-stalled', resolve))
    try {
      // Pages 0 and 1 resident and clean (write-protected), page 2 resident and dirty.
      expect(region.view(0, 1)[0]).toBe(1)
      expect(region.view(PAGE, 1)[0]).toBe(2)
      region.view(2 * PAGE, 1)[0] = 0xa2
      const started = performance.now()
      // The pager blocks in read(5); the watchdog (5 s floor) takes over.
      expect(kernelCopy(region.view(5 * PAGE, 16), sink)).toEqual({ ok: false, code: 'EFAULT' })
      const waited = performance.now() - started
      expect(waited).toBeGreaterThanOrEqual(4500)
      expect(waited).toBeLessThan(6900)
      // While the pager is still blocked: a first write to a clean resident
      // page is let through by the takeover, and must still be written back.
      region.view(0, 1)[0] = 0xa0
      const event = await stalled
      expect(event.message).toMatch(/did not answer faults for 5000 ms/)
      // After it: the takeover still answers write faults, and flush counts them.
      region.view(PAGE, 1)[0] = 0xa1
      await region.flush()
      const stored = readFileSync(path)
      expect(stored[0]).toBe(0xa0)
      expect(stored[PAGE]).toBe(0xa1)
      expect(stored[2 * PAGE]).toBe(0xa2)
      expect(stored[5 * PAGE]).toBe(6)
    } finally {
      await region.close()
    }
  }, 30_000)

  it('a pager that is only slow is left alone: a read blocked for less than the stall is served', async () => {
    const region = await stallingRegion('slow', 'block', { blockMs: 1500 }, 300)
    let stalls = 0
    region.on('pager-stalled', () => stalls++)
    try {
      expect(kernelCopy(region.view(5 * PAGE, 16), sink)).toEqual({ ok: true })
      expect(region.view(5 * PAGE, 1)[0]).toBe(6)
      expect(stalls).toBe(0)
    } finally {
      await region.close()
    }
  })
})
