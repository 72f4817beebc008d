import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'

const testBackends = fileURLToPath(new URL('../fixtures/test-backends.mjs', import.meta.url))
const touchBadPage = fileURLToPath(new URL('../fixtures/touch-bad-page.mjs', import.meta.url))
const moduleBackend = (options: Record<string, unknown>) => ({ type: 'module', module: testBackends, options })

describe('backend failures are never silent', () => {
  it('a page of the wrong length is refused: prefetch rejects with ERR_BAD_PAGE naming the page', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: moduleBackend({ mode: 'short' }) })
    try {
      await expect(region.prefetch(3 * 4096, 4096)).rejects.toMatchObject({ code: 'ERR_BAD_PAGE', pages: [3] })
      expect(region.stats().residentPages).toBe(0)
    } finally {
      await region.close()
    }
  })

  it('a transient failure is retried and the page arrives', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: moduleBackend({ mode: 'flaky', failures: 3 }) })
    const retries: number[] = []
    region.on('fetch-retry', (e) => retries.push(e.attempt))
    try {
      expect(region.view(5 * 4096, 4096)[0]).toBe(5)
      const s = region.stats()
      expect(s.fetchRetries).toBe(3)
      expect(s.fetchErrors).toBe(0)
      await new Promise((r) => setTimeout(r, 10))
      expect(retries).toEqual([1, 2, 3])
    } finally {
      await region.close()
    }
  })

  it('a backend that stays down makes prefetch reject with ERR_BACKEND after fetchTimeoutMs', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, fetchTimeoutMs: 100, backend: moduleBackend({ mode: 'down' }) })
    try {
      await expect(region.prefetch(0, 4096)).rejects.toMatchObject({ code: 'ERR_BACKEND', pages: [0] })
    } finally {
      await region.close()
    }
  })

  it.each(['down', 'short'])('a faulting access to a page the backend cannot deliver (%s) gets SIGBUS, not zeros', (mode) => {
    const r = spawnSync(process.execPath, [touchBadPage, mode, '100'], { encoding: 'utf8', timeout: 20_000 })
    expect(r.stdout).not.toMatch(/value/)
    expect(r.signal).toBe('SIGBUS')
    expect(r.stderr).toMatch(/page 2/)
    expect(r.stderr).toMatch(/SIGBUS/)
  })

  it('a faulting access whose pager thread died gets SIGBUS, not a sleep for ever', () => {
    // The pager reads the fault, then throws: the message is consumed and nobody is left to answer it.
    const r = spawnSync(process.execPath, [touchBadPage, 'crash', '60000'], { encoding: 'utf8', timeout: 20_000 })
    expect(r.error).toBeUndefined() // not killed by the timeout
    expect(r.stdout).not.toMatch(/value/)
    expect(r.signal).toBe('SIGBUS')
    expect(r.stderr).toMatch(/a bug in the pager thread/)
    expect(r.stderr).toMatch(/ended without closing it/)
  })
})
