// Builds the addon with node-gyp against the headers of the running Node.
// Under pnpm, node-gyp ignores npm's `nodedir` and tries to download headers,
// which fails offline; `<prefix>/include/node` ships with every Node install.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const pkgDir = join(here, '..')
const nodedir = join(dirname(process.execPath), '..')
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`faultline: Node headers not found under ${nodedir}/include/node; install Node.js with its headers`)
  process.exit(1)
}
const require = createRequire(import.meta.url)
const gyp = require.resolve('node-gyp/bin/node-gyp.js')
const jobs = process.env.JOBS ?? 'max'
const gypArgs = (verb) => [gyp, verb, `--nodedir=${nodedir}`, `--jobs=${jobs}`]
// configure once, then let make rebuild only what changed
const steps = existsSync(join(pkgDir, 'build', 'Makefile')) ? ['build'] : ['configure', 'build']
for (const verb of steps) {
  const result = spawnSync(process.execPath, gypArgs(verb), { cwd: pkgDir, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
