// Builds the C side of `faultline serve`: the client library (libfaultline.so),
// the test/bench peer and the kernel-floor handler. No dependencies beyond cc.
//
//   node scripts/build-c.mjs [OUT_DIR]     (default: build-c/ at the repo root)
//
// import { buildC } from './build-c.mjs'; buildC(dir) -> { lib, peer, serveFloor }
import { spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const FLAGS = ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-pthread']

function cc(args) {
  const r = spawnSync(process.env.CC || 'cc', [...FLAGS, ...args], { cwd: root, encoding: 'utf8' })
  if (r.error) throw new Error(`build-c: cannot run ${process.env.CC || 'cc'}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`build-c: cc ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`)
}

/** Compiles the three artifacts into outDir (created if needed) and returns their absolute paths. */
export function buildC(outDir = join(root, 'build-c')) {
  const out = resolve(outDir)
  mkdirSync(out, { recursive: true })
  const lib = join(out, 'libfaultline.so')
  const peer = join(out, 'peer')
  const serveFloor = join(out, 'serve-floor')
  cc(['-shared', '-fPIC', '-o', lib, 'clients/c/faultline.c'])
  cc(['-Iclients/c', '-o', peer, 'test/serve/peer.c', 'clients/c/faultline.c'])
  cc(['-o', serveFloor, 'bench/serve-floor.c'])
  return { lib, peer, serveFloor }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const paths = buildC(process.argv[2])
    for (const p of Object.values(paths)) console.log(p)
  } catch (err) {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  }
}
