// Regions and the process around them: flags, failed opens, exit.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const unshared = fileURLToPath(new URL('../fixtures/unshared-source-backend.mjs', import.meta.url))
const stuckClose = fileURLToPath(new URL('../fixtures/stuck-close-backend.mjs', import.meta.url))

function runScript(script: string, flags: string[] = [], timeout = 20_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script], { encoding: 'utf8', timeout })
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr }
}

describe('a region in its process', () => {
  it('opens under process-wide node flags (--max-old-space-size, --expose-gc)', () => {
    const r = runScript(
      `import { openRegion } from '@faultline/core'
       const region = await openRegion({ size: 1 << 20, backend: 'memory:' })
       console.log(region.view()[5])
       await region.close()`,
      ['--max-old-space-size=512', '--expose-gc'],
    )
    expect(r.stderr).toBe('')
    expect([r.status, r.stdout]).toEqual([0, '0'])
  })

  it('a region that fails to open (here: a backend breaking the sharedPages contract) rejects, and the process lives on', () => {
    const r = runScript(
      `import { openRegion } from '@faultline/core'
       try {
         await openRegion({ backend: { type: 'module', module: ${JSON.stringify(unshared)} }, pageSize: 4096 })
         console.log('opened')
       } catch (err) {
         console.log('rejected: ' + err.message)
       }
       await new Promise((r) => setTimeout(r, 300))
       console.log('alive')`,
    )
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^rejected: .*SharedArrayBuffer.*\nalive$/s)
  })

  it('process.exit() with a region open says nothing about a dead pager', () => {
    const r = runScript(
      `import { openRegion } from '@faultline/core'
       const region = await openRegion({ size: 1 << 20, backend: 'memory:' })
       console.log(region.view()[5])
       process.exit(0)`,
    )
    expect([r.status, r.stdout]).toEqual([0, '0'])
    expect(r.stderr).not.toMatch(/ended without closing/)
  })

  it('close() of a region whose backend never finishes closing resolves after the bound, with every page written back, and says so; its thread serves its other regions, takes no new one, and ends with the last', () => {
    const r = runScript(
      `import { availableParallelism } from 'node:os'
       import { openRegion } from '@faultline/core'
       const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: { type: 'module', module: ${JSON.stringify(stuckClose)}, options: { size: 1 << 20 } } })
       // More regions than threads: one shares the stuck region's thread.
       const others = await Promise.all(Array.from({ length: availableParallelism() }, () => openRegion({ backend: 'memory:', size: 1 << 20 })))
       const mate = others.find((o) => o.pagerThreadId === region.pagerThreadId)
       region.view()[3 * 4096] = 7
       const t0 = Date.now()
       await region.close()
       console.log('closed after ' + Math.round((Date.now() - t0) / 1000) + ' s, flushed ' + region.stats().pagesWritten)
       mate.view()[5 * 4096] = 9
       const after = await openRegion({ backend: 'memory:', size: 1 << 20 })
       console.log('mate ' + mate.view()[5 * 4096] + ', new region on that thread: ' + (after.pagerThreadId === region.pagerThreadId))
       await Promise.all([after, ...others].map((o) => o.close()))`,
      [],
      60_000,
    )
    // Exited by itself: the retired thread, its backend's sockets still open, does not keep the process alive.
    expect(r.status).toBe(0)
    expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^closed after (29|30|31|32|33|34|35) s, flushed 1$/), 'mate 9, new region on that thread: false'])
    expect(r.stderr).toMatch(/stuck-close did not finish closing within 30 s; the region is closed \(every page was written back\)/)
  }, 70_000)
})
