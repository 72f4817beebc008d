// `shared` scenario of `pnpm bench`: four processes each scan (and verify)
// the same HTTP object, as regions with `shared: true` (one cache for the
// machine) against plain regions (one copy per process). Wall time from the
// common start to the last process done, bytes fetched from the server (sum
// of the processes' stats.bytesFetched) and the sum of the processes' PSS
// for the mapping. The server runs in a child process (bench/remote-servers.mjs).
// Usable alone:
//   node bench/shared.mjs [--quick] [--mib 256] [--processes 4]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fillPattern } from '@faultline/core/pattern'
import { startScanners, scanTogether } from '../test/fixtures/shared-scan.mjs'
import { startServers } from './remote.mjs'

const PAGE = 65536

function argValue(name, fallback) {
  const at = process.argv.indexOf(name)
  return at < 0 ? fallback : Number(process.argv[at + 1])
}

export async function sharedScenarios({ quick, row, mib = quick ? 64 : 256, processes = 4 }) {
  const size = mib * 2 ** 20
  const servers = await startServers()
  const dir = mkdtempSync('/dev/shm/faultline-bench-shared-')
  try {
    const data = Buffer.alloc(size)
    fillPattern(data, 0)
    writeFileSync(join(servers.httpDir, 'shared.bin'), data)
    const backend = `${servers.httpBase}/shared.bin`
    const scenario = `${processes} processes scan ${mib} MiB (HTTP)`
    let base
    for (const shared of [false, { dir }]) {
      const children = await startScanners(processes, { backend, pageSize: PAGE, shared })
      const { results, memory, wallMs } = await scanTogether(children)
      if (results.some((r) => r.mismatch >= 0)) throw new Error(`bench shared: a process read a wrong byte (${shared ? 'shared' : 'not shared'})`)
      const fetched = results.reduce((sum, r) => sum + r.stats.bytesFetched, 0)
      const pss = memory.reduce((sum, m) => sum + m.pss, 0)
      const r = row(scenario, shared ? 'shared: true' : 'not shared', { ms: wallMs, wall_ms: wallMs, gbps: (processes * size) / wallMs / 1e6, fetched_bytes: fetched, pss_bytes: pss }, base)
      base ??= r
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    servers.stop()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = []
  const row = (scenario, subject, m, base) => {
    const r = { scenario, subject, ...m }
    if (base !== undefined) r.ratio = m.gbps / base.gbps
    rows.push(r)
    return r
  }
  await sharedScenarios({ quick: process.argv.includes('--quick'), row, mib: argValue('--mib', process.argv.includes('--quick') ? 64 : 256), processes: argValue('--processes', 4) })
  const { renderTable } = await import('./table.mjs')
  console.log(renderTable(rows))
}
