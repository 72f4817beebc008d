/**
 * Runs a fuzzer's cases within a budget. Case `k` of seed `s` always gets
 * the same generator, so a failure names the two numbers that replay it.
 *
 *   FAULTLINE_FUZZ_SEED=s      the seed (default: a fixed one, so `pnpm test` is repeatable)
 *   FAULTLINE_FUZZ_SECONDS=n   run for n seconds, as many cases as fit (scripts/fuzz.mjs)
 *   FAULTLINE_FUZZ_CASE=k      run case k alone (to replay a failure)
 */
import path from 'node:path'
import { expect } from 'vitest'
import { mix32, Rng } from './rng.js'

const DEFAULT_SEED = 1515

export interface Budget {
  /** Cases in a `pnpm test` run. */
  cases: number
  /** Wall-clock cap of a `pnpm test` run, in case a slow machine cannot fit the cases. */
  seconds: number
  /** The cases cover the whole input space (every offset of every corpus file): a long run does not repeat them. */
  exhaustive?: boolean
}

export interface RunSummary {
  cases: number
  ms: number
}

export function fuzzSeed(): number {
  const raw = process.env.FAULTLINE_FUZZ_SEED
  if (raw === undefined || raw === '') return DEFAULT_SEED
  const seed = Number(raw)
  if (!Number.isSafeInteger(seed)) throw new Error(`FAULTLINE_FUZZ_SEED must be a whole number (got ${JSON.stringify(raw)})`)
  return seed >>> 0
}

/** The test timeout a fuzz test needs: its budget plus room for setup. */
export function fuzzTimeoutMs(budget: Budget): number {
  return (longRunSeconds() ?? budget.seconds) * 1000 + 30_000
}

function longRunSeconds(): number | undefined {
  const raw = process.env.FAULTLINE_FUZZ_SECONDS
  if (raw === undefined || raw === '') return undefined
  const seconds = Number(raw)
  if (!(seconds > 0)) throw new Error(`FAULTLINE_FUZZ_SECONDS must be a positive number (got ${JSON.stringify(raw)})`)
  return seconds
}

function onlyCase(): number | undefined {
  const raw = process.env.FAULTLINE_FUZZ_CASE
  return raw === undefined || raw === '' ? undefined : Number(raw)
}

/** A stable number per fuzzer, so two fuzzers with one seed do not draw the same streams. */
function nameHash(name: string): number {
  let h = 0
  for (let i = 0; i < name.length; i++) h = mix32(h ^ name.charCodeAt(i))
  return h
}

export async function runCases(name: string, budget: Budget, run: (rng: Rng, index: number) => void | Promise<void>): Promise<RunSummary> {
  const seed = fuzzSeed()
  const long = longRunSeconds()
  const only = onlyCase()
  const open = long !== undefined && budget.exhaustive !== true
  const cases = only !== undefined ? 1 : open ? Infinity : budget.cases
  const deadline = performance.now() + (open ? long : budget.seconds) * 1000
  const started = performance.now()
  const salt = nameHash(name)
  let n = 0
  for (; n < cases && performance.now() < deadline; n++) {
    const index = only ?? n
    try {
      await run(new Rng(mix32(seed ^ salt) ^ mix32(index)), index)
    } catch (err) {
      const file = path.relative(process.cwd(), expect.getState().testPath ?? 'test/fuzz')
      const message = err instanceof Error ? err.message : String(err)
      throw new Error(
        `fuzz ${name}: case ${index} of seed ${seed} failed: ${message}\n` +
          `  replay: FAULTLINE_FUZZ_SEED=${seed} FAULTLINE_FUZZ_CASE=${index} npx vitest run ${file}`,
        { cause: err },
      )
    }
  }
  const ms = Math.round(performance.now() - started)
  const capped = n < cases && only === undefined && !open ? ` (stopped at the ${budget.seconds} s cap before ${budget.cases})` : ''
  console.log(`fuzz ${name}: ${n} case(s) in ${ms} ms, seed ${seed}${capped}`)
  return { cases: n, ms }
}
