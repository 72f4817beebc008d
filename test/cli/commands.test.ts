/**
 * The CLI as a user runs it (the built `faultline` in a child process): help,
 * the main job, and the memory-disaggregation run `faultline bench`, on the
 * embedded memory backend and on a real Redis.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { fillPattern } from '@faultline/core/pattern'
import { dropAfterSuite, standaloneClient, standaloneSpec, uniqueNamespace } from '../helpers/redis.js'

const cli = fileURLToPath(new URL('../../packages/core/dist/cli/main.js', import.meta.url))

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** What `faultline bench` printed, as numbers. */
function benchReport(stdout: string): { hitRate: number; faults: number; peakPercent: number; faultP50Us: number } {
  const hit = /hit rate ([\d.]+)%; faults (\d+)/.exec(stdout)
  const peak = /peak resident [\d.]+ [KMG]iB \(bound [\d.]+ [KMG]iB, (\d+)%\)/.exec(stdout)
  const latency = /as the reader saw it: p50 ([\d.]+)/.exec(stdout)
  if (hit === null || peak === null || latency === null) throw new Error(`unexpected report:\n${stdout}`)
  return { hitRate: Number(hit[1]), faults: Number(hit[2]), peakPercent: Number(peak[1]), faultP50Us: Number(latency[1]) }
}

describe('faultline CLI', () => {
  it('prints its usage for --help, also after a command, and exits 0', () => {
    for (const args of [['--help'], ['bench', '--help'], ['import', '-h']]) {
      const r = run(...args)
      expect(r.status, args.join(' ')).toBe(0)
      expect(r.stdout).toMatch(/usage: faultline/)
      expect(r.stdout).toMatch(/faultline bench \[--backend URL\]/)
    }
  })

  it('runs the main job on a small dataset and verifies every byte', () => {
    const r = run('run', '--size', '8M', '--random-pages', '200')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/SHA-256 of the region equals the file's/)
    expect(r.stdout).toMatch(/faultline: OK, every byte verified/)
  })

  it('bench: random and zipf reads over 4x maxResident stay within the bound, data verified, zipf hitting more', () => {
    const common = ['--size', '32M', '--max-resident', '8M', '--touches', '3000']
    const random = run('bench', ...common)
    const skewed = run('bench', ...common, '--pattern', 'zipf')
    for (const r of [random, skewed]) {
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/data verified/)
    }
    const a = benchReport(random.stdout)
    const b = benchReport(skewed.stdout)
    // Uniform over 4x the bound hits about a quarter of the time.
    expect(a.hitRate).toBeGreaterThan(10)
    expect(a.hitRate).toBeLessThan(40)
    expect(b.hitRate).toBeGreaterThan(a.hitRate + 15)
    for (const r of [a, b]) {
      expect(r.peakPercent).toBeLessThanOrEqual(110)
      // A fault as the reader sees it is a kernel round trip: more than a hit's fraction of a µs.
      expect(r.faultP50Us).toBeGreaterThan(1)
    }
  })

  describe('bench over Redis', () => {
    const track = dropAfterSuite(standaloneClient())

    it('reads a namespace at random over 4x maxResident, within the bound, faulting as often as over memory', async () => {
      const spec = track(standaloneSpec(uniqueNamespace('clibench')))
      const writer = await openRegion({ size: 32 * 2 ** 20, pageSize: 65536, backend: spec })
      fillPattern(writer.view(), 0)
      await writer.close()
      const common = ['--size', '32M', '--max-resident', '8M', '--touches', '20000']
      const r = run('bench', '--backend', String(spec.url), ...common)
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/backend redis:\/\//)
      const report = benchReport(r.stdout)
      expect(report.peakPercent).toBeLessThanOrEqual(110)
      // The same touches as over the embedded memory backend, so about the
      // same faults: every touch must really load its byte (a load whose
      // value is unused may be optimized away, fault and all).
      const memory = benchReport(run('bench', ...common).stdout)
      expect(report.faults).toBeGreaterThan(memory.faults * 0.95)
      expect(report.faults).toBeLessThan(memory.faults * 1.05)
    })
  })
})
