// Builds the workspace in dependency order. pnpm's own topological sort is not
// used because core loads the built-in backends at run time while backends
// import core's contract types: the order is native, core, backends.
import { spawnSync } from 'node:child_process'

const order = ['@faultline/native', '@faultline/core', '@faultline/backends']
for (const name of order) {
  const r = spawnSync('pnpm', ['--filter', name, 'run', 'build'], { stdio: 'inherit' })
  if (r.status !== 0) {
    console.error(`faultline: building ${name} failed`)
    process.exit(r.status ?? 1)
  }
}
