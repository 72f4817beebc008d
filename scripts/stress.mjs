#!/usr/bin/env node
// The long stress: `pnpm stress -- [--seconds N] [--seed S]`. Runs
// test/stress/*.stress.ts under vitest (which starts the redis-server it
// needs, test/setup/stress.ts, and stops it after) for N seconds (default
// 600), starting from seed S (default: a random one, printed).
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const usage = 'usage: pnpm stress -- [--seconds N] [--seed S]'
const args = process.argv.slice(2).filter((a) => a !== '--')
const env = { ...process.env }
for (let i = 0; i < args.length; i += 2) {
  const [flag, value] = [args[i], args[i + 1]]
  if (value === undefined || !/^\d+$/.test(value)) {
    console.error(`${usage}\n(${flag} needs a whole number)`)
    process.exit(2)
  }
  if (flag === '--seconds') env.FAULTLINE_STRESS_SECONDS = value
  else if (flag === '--seed') env.FAULTLINE_STRESS_SEED = value
  else {
    console.error(`${usage}\n(unknown option ${flag})`)
    process.exit(2)
  }
}

const root = fileURLToPath(new URL('..', import.meta.url))
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url))
const r = spawnSync(process.execPath, [vitest, 'run', '--config', 'test/stress/vitest.config.ts'], { cwd: root, env, stdio: 'inherit' })
process.exit(r.status ?? 1)
