// The `pnpm bench` table, from its rows; `node bench/table.mjs` prints it
// again from .bench/results.json (e.g. for docs/benchmarks.md).
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const fmt = (v, d = 2) => (v === undefined ? '' : typeof v === 'number' ? v.toFixed(d) : String(v))

/** Each latency row's p50 over its scenario's fault-per-page floor: the issue's "≤ 1.3×" is read here. */
function p50VsFloor(rows, r) {
  // Only where every touch faults: elsewhere p50 is a hit's.
  if (r.p50_us === undefined || r.subject.startsWith('kernel') || !r.scenario.startsWith('random')) return undefined
  const floor = rows.find((f) => f.scenario === r.scenario && f.subject.startsWith('kernel floor') && f.p50_us !== undefined)
  return floor === undefined ? undefined : r.p50_us / floor.p50_us
}

export function renderTable(rows) {
  const header = ['scenario', 'subject', 'GB/s', 'p50 µs', 'p99 µs', 'ratio', 'extra']
  const lines = rows.map((r) => {
    const p50 = r.hit_rate === undefined ? p50VsFloor(rows, r) : undefined
    const extra = [
      p50 !== undefined ? `p50 ${fmt(p50)}× floor` : '',
      r.vs_copy !== undefined ? `vs copy ${fmt(r.vs_copy)}` : '',
      r.vs_copy4k !== undefined ? `vs copy@4K ${fmt(r.vs_copy4k)}` : '',
      r.vs_batched !== undefined ? `vs batched ${fmt(r.vs_batched)}` : '',
      r.vs_ceiling !== undefined ? `vs ceiling ${fmt(r.vs_ceiling)}` : '',
      r.vs_memory !== undefined ? `vs memory ${fmt(r.vs_memory)}` : '',
      r.vs_loop !== undefined ? `vs best loop ${fmt(r.vs_loop)}` : '',
      r.vs_download !== undefined ? `vs download ${fmt(r.vs_download)}` : '',
      r.vs_per_page !== undefined ? `vs per-page GETs ${fmt(r.vs_per_page)}` : '',
      r.faults !== undefined ? `faults ${r.faults}` : '',
      r.requests !== undefined ? `requests ${r.requests}` : '',
      r.fetched_bytes !== undefined ? `fetched ${fmt(r.fetched_bytes / 2 ** 20, 1)} MiB` : '',
      r.wall_ms !== undefined ? `wall ${fmt(r.wall_ms, 0)} ms` : '',
      r.pss_bytes !== undefined ? `PSS ${fmt(r.pss_bytes / 2 ** 20, 1)} MiB` : '',
      r.hit_rate !== undefined ? `hit ${fmt(r.hit_rate)}` : '',
      r.fault_p50_us !== undefined ? `fault p50 ${fmt(r.fault_p50_us, 1)} µs` : '',
      r.open_ms !== undefined ? `${fmt(r.open_ms, 1)} ms${r.open_max_ms !== undefined ? ` (slowest ${fmt(r.open_max_ms, 1)} ms)` : ''}` : '',
    ]
    return [r.scenario, r.subject, fmt(r.gbps, 3), fmt(r.p50_us, 1), fmt(r.p99_us, 1), fmt(r.ratio), extra.filter(Boolean).join(', ')]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...lines.map(line)].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = fileURLToPath(new URL('../.bench/results.json', import.meta.url))
  console.log(renderTable(JSON.parse(readFileSync(path, 'utf8')).rows))
}
