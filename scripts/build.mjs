// Builds the workspace. The package graph is a tree (native and contract at
// the leaves, then backends, then core), so pnpm's topological order works.
import { spawnSync } from 'node:child_process'

const r = spawnSync('pnpm', ['-r', '--workspace-concurrency=1', 'run', 'build'], { stdio: 'inherit' })
if (r.status !== 0) {
  console.error('faultline: building the workspace failed')
  process.exit(r.status ?? 1)
}
