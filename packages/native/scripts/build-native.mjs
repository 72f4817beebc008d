// Compiles the addon into build/Release with node-gyp against the running
// Node's headers: configure once, then let make rebuild only what changed.
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exitUnlessBuildable, nodeGyp } from './node-gyp.mjs'

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..')
exitUnlessBuildable()
const jobs = process.env.JOBS ?? 'max'
const steps = existsSync(join(pkgDir, 'build', 'Makefile')) ? ['build'] : ['configure', 'build']
for (const verb of steps) nodeGyp(pkgDir, [verb, `--jobs=${jobs}`])
