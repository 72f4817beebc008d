/**
 * Pager threads are reused: a region that closes hands its thread to the
 * next region opened, so an open costs a message instead of a thread start.
 * Each thread still serves one region at a time, a failure stays with its
 * region, and a waiting thread never keeps the process alive.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion, releasePagerThreads } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'

const PAGE = 65536

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

  it('regions open at the same time each have a thread of their own', async () => {
    const regions = await Promise.all([0, 1, 2].map(() => openRegion({ backend: 'memory:', size: 2 ** 20 })))
    try {
      expect(new Set(regions.map((r) => r.pagerThreadId)).size).toBe(3)
    } finally {
      await Promise.all(regions.map((r) => r.close()))
    }
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
