/**
 * Pager threads are shared: a region is served by one of the process's
 * pager threads (at most one per core), so an open costs a message instead
 * of a thread start. A backend's failure stays with its region; a bug that
 * kills a thread reaches its regions as SIGBUS, never a hang; a region can
 * have a thread of its own; a waiting thread never keeps the process alive.
 */
import { spawnSync } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion, releasePagerThreads } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'
import { processUsage } from '../helpers/proc-usage.js'

const PAGE = 65536
const threadMates = fileURLToPath(new URL('../fixtures/thread-mates.mjs', import.meta.url))

describe('pager threads', () => {
  it("a closed region's thread serves the next region, with that region's own backend and bytes", async () => {
    const first = await openRegion({ backend: { type: 'memory', data: sharedPattern(2 ** 20) }, pageSize: PAGE })
    const thread = first.pagerThreadId
    expect(checkPattern(first.view(0, PAGE), 0)).toBe(-1)
    await first.close()
    const data = new Uint8Array(new SharedArrayBuffer(4 * 2 ** 20)).fill(0x5a)
    const second = await openRegion({ backend: { type: 'memory', data }, pageSize: 4096, access: 'read-only' })
    try {
      expect(second.pagerThreadId).toBe(thread)
      expect(second.pageSize).toBe(4096)
      expect(second.view(3 * 2 ** 20, 4096).every((b) => b === 0x5a)).toBe(true)
      expect(second.stats().faults).toBe(1) // its own stats, not the first region's
    } finally {
      await second.close()
    }
  })

  it('regions open at the same time share at most one pager thread per core, each with its own bytes and stats', async () => {
    const count = availableParallelism() * 2 + 1
    const regions = await Promise.all(Array.from({ length: count }, (_, k) => openRegion({ backend: { type: 'memory', data: new Uint8Array(new SharedArrayBuffer(2 ** 20)).fill(k + 1) }, pageSize: 4096, access: 'read-only' })))
    try {
      const threads = new Set(regions.map((r) => r.pagerThreadId))
      expect(threads.size).toBeLessThanOrEqual(availableParallelism())
      expect(threads.size).toBeLessThan(count)
      for (const [k, r] of regions.entries()) {
        expect(r.view(k * 4096, 4096)[17]).toBe(k + 1)
        // Counted by this region only, though its thread served the others' faults too.
        expect(r.stats().faults).toBe(1)
      }
    } finally {
      await Promise.all(regions.map((r) => r.close()))
    }
  })

  it("pagerThread: 'own' gets a thread no other region is given, and it ends with its region", async () => {
    const tasks = (): number => processUsage().threads
    const shared = await openRegion({ backend: 'memory:', size: 2 ** 20 })
    const before = tasks()
    const own = await openRegion({ backend: 'memory:', size: 2 ** 20, pagerThread: 'own' })
    const more = await Promise.all(Array.from({ length: availableParallelism() + 1 }, () => openRegion({ backend: 'memory:', size: 2 ** 20 })))
    try {
      expect(tasks()).toBeGreaterThan(before)
      expect(own.pagerThreadId).not.toBe(shared.pagerThreadId)
      for (const r of more) expect(r.pagerThreadId).not.toBe(own.pagerThreadId)
      own.view()[3] = 3
      expect(own.view()[3]).toBe(3)
    } finally {
      await Promise.all(more.map((r) => r.close()))
      await own.close()
      await shared.close()
    }
    // Its thread (and the threads of that thread's own) end with it; the shared ones wait.
    for (let i = 0; i < 100 && tasks() >= before + 1; i++) await new Promise((r) => setTimeout(r, 50))
    expect(tasks()).toBeLessThanOrEqual(before)
  })

  it('a bug that kills a shared thread: its own region fails typed, regions on other threads go on, a page of a region on that thread is SIGBUS, not a hang', () => {
    const r = spawnSync(process.execPath, [threadMates, 'shared'], { encoding: 'utf8', timeout: 60_000 })
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines[0]?.mates, r.stdout + r.stderr).toBeGreaterThan(0)
    expect(lines).toContainEqual({ prefetch: 'ERR_PAGER_FAILED' })
    expect(lines).toContainEqual({ elsewhere: 'served' })
    expect(lines.at(-1)).toEqual({ touching: 'a page of a region on the dead thread' })
    expect(r.signal).toBe('SIGBUS')
    expect(r.stderr).toMatch(/the pager thread failed: Error: a bug in the pager thread/)
  })

  it("the same bug with pagerThread: 'own' reaches no other region", () => {
    const r = spawnSync(process.execPath, [threadMates, 'own'], { encoding: 'utf8', timeout: 60_000 })
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines[0], r.stdout + r.stderr).toEqual({ mates: 0, elsewhere: availableParallelism() + 1 })
    expect(lines).toContainEqual({ prefetch: 'ERR_PAGER_FAILED' })
    expect(lines.at(-1)).toEqual({ elsewhere: 'served' })
    expect(r.status).toBe(0)
  })

  it('rejects a pagerThread that is neither "shared" nor "own", naming the option', async () => {
    await expect(openRegion({ backend: 'memory:', size: 2 ** 20, pagerThread: 'pooled' as 'own' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', option: 'pagerThread' })
  })

  it('a region whose open failed leaves nothing behind for the next one', async () => {
    await expect(openRegion({ backend: { type: 'file', path: '/nonexistent/faultline/x.bin' }, size: 2 ** 20 })).rejects.toMatchObject({ code: 'ERR_BACKEND' })
    const r = await openRegion({ backend: { type: 'memory', data: sharedPattern(2 ** 20) } })
    try {
      expect(checkPattern(r.view(PAGE, PAGE), PAGE)).toBe(-1)
    } finally {
      await r.close()
    }
  })

  it('releasePagerThreads() ends the waiting threads: the next region starts a thread of its own', async () => {
    const first = await openRegion({ backend: 'memory:', size: 2 ** 20 })
    const thread = first.pagerThreadId
    await first.close()
    await releasePagerThreads()
    const second = await openRegion({ backend: 'memory:', size: 2 ** 20 })
    try {
      expect(second.pagerThreadId).not.toBe(thread)
    } finally {
      await second.close()
    }
  })

  it("a reused thread sees the process's environment as it is now (backends read credentials from it)", async () => {
    const warm = await openRegion({ backend: 'memory:', size: 2 ** 20 })
    await warm.close()
    const key = `FAULTLINE_TEST_${process.pid}`
    process.env[key] = 'now'
    try {
      // A module backend that reports the variable as the page's first byte.
      const { writeFileSync } = await import('node:fs')
      const { join } = await import('node:path')
      const { tmpdir } = await import('node:os')
      const module = join(tmpdir(), `env-backend-${process.pid}.mjs`)
      writeFileSync(module, `export function createBackend(o, c) { return { info: { name: 'env', size: c.size, readOnly: true }, async read(ix) { return ix.map(() => { const b = new Uint8Array(c.pageSize); b[0] = process.env[${JSON.stringify(key)}] === 'now' ? 1 : 2; return b }) }, async close() {} } }`)
      const r = await openRegion({ backend: { type: 'module', module }, size: 2 ** 20, access: 'read-only' })
      try {
        expect(r.pagerThreadId).toBe(warm.pagerThreadId)
        expect(r.view()[0]).toBe(1)
      } finally {
        await r.close()
      }
    } finally {
      delete process.env[key]
    }
  })

  it('a waiting pager thread does not keep the process alive', () => {
    const core = fileURLToPath(new URL('../../packages/core/dist/index.js', import.meta.url))
    const script = `import { openRegion } from ${JSON.stringify(core)}; const r = await openRegion({ backend: 'memory:', size: 1 << 20 }); r.view()[5] = 1; await r.close(); console.log('closed')`
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })
    expect(child.stderr).toBe('')
    expect(child.stdout.trim()).toBe('closed')
    expect(child.signal).toBeNull() // not killed by the timeout: it exited by itself
    expect(child.status).toBe(0)
  })
})
