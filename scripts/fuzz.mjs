// The long fuzz run: the fuzzers of test/fuzz/ for a wall-clock budget,
// each getting an equal share, one file at a time (the machine is shared).
//
//   pnpm fuzz --seconds 600 --seed 42     # about ten minutes, seed 42
//   pnpm fuzz --seconds 120 http          # only the files matching "http"
//   pnpm fuzz --seed 42 --case 1234 http  # replay one case of a failure
//
// Without --seed a random seed is drawn and printed: a failure names its
// seed and case, and FAULTLINE_FUZZ_SEED/FAULTLINE_FUZZ_CASE replay it.
import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// Each file and how many open-ended fuzzers it runs (a test bounded by
// count alone, like the RESP truncation at every offset, does not count).
const FUZZERS = {
  'test/fuzz/resp.test.ts': 2,
  'test/fuzz/http.test.ts': 1,
  'test/fuzz/s3.test.ts': 1,
  'test/fuzz/s3-pages.test.ts': 1,
  'test/fuzz/uffd-messages.test.ts': 1,
}

function usage(message) {
  if (message) console.error(`fuzz: ${message}`)
  console.error('usage: pnpm fuzz [--seconds N] [--seed S] [--case K] [file filter…]')
  process.exit(2)
}

const args = process.argv.slice(2)
let seconds = 300
let seed
let only
const filters = []
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  const value = () => {
    const v = args[++i]
    if (v === undefined || !/^\d+$/.test(v)) usage(`${a} needs a whole number`)
    return Number(v)
  }
  if (a === '--seconds') seconds = value()
  else if (a === '--seed') seed = value()
  else if (a === '--case') only = value()
  else if (a === '--help' || a === '-h') usage()
  else if (a.startsWith('-')) usage(`unknown option ${a}`)
  else filters.push(a)
}
if (seconds <= 0) usage('--seconds must be positive')
seed ??= randomInt(2 ** 31)

const files = Object.keys(FUZZERS).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
if (files.length === 0) usage(`no fuzz file matches ${filters.join(', ')}`)
const fuzzers = files.reduce((n, f) => n + FUZZERS[f], 0)
const share = Math.max(1, Math.floor(seconds / fuzzers))

const env = { ...process.env, FAULTLINE_FUZZ_SEED: String(seed) }
if (only !== undefined) {
  env.FAULTLINE_FUZZ_CASE = String(only)
  console.log(`fuzz: replaying case ${only} of seed ${seed} in ${files.join(', ')}`)
} else {
  env.FAULTLINE_FUZZ_SECONDS = String(share)
  console.log(`fuzz: seed ${seed}, ${fuzzers} fuzzer(s) × ${share} s, one file at a time (about ${fuzzers * share} s)`)
}

const r = spawnSync('npx', ['vitest', 'run', '--no-file-parallelism', ...files], { cwd: root, env, stdio: 'inherit' })
if (r.status !== 0) console.error(`fuzz: failed (seed ${seed}); each failure above names its case and the command that replays it`)
process.exit(r.status ?? 1)
