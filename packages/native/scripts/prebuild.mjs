// Builds the prebuilt addon that the tarball ships, with prebuildify:
// prebuilds/<platform>-<arch>/@faultline+native.<libc>.node, one Node-API 8
// binary for every Node version. `pnpm pack` runs it for the machine it runs
// on; for another platform run it there (docs/installing.md).
//
// It compiles in a scratch copy of the package: prebuildify runs
// `node-gyp rebuild`, which would first delete build/Release, the addon that
// a running workspace (or a test suite packing the package) is loading.
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exitUnlessBuildable, nodedir } from './node-gyp.mjs'

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..')
exitUnlessBuildable()
const scratch = mkdtempSync(join(tmpdir(), 'faultline-prebuild-'))
let status = 1
try {
  for (const part of ['package.json', 'binding.gyp', 'src']) cpSync(join(pkgDir, part), join(scratch, part), { recursive: true })
  // binding.gyp asks node-addon-api for its include directory.
  symlinkSync(join(pkgDir, 'node_modules'), join(scratch, 'node_modules'))
  const prebuildify = createRequire(import.meta.url).resolve('prebuildify/bin.js')
  // nodedir in the environment makes node-gyp use the local headers
  // instead of downloading them for prebuildify's --target.
  const env = { ...process.env, npm_config_nodedir: nodedir }
  const args = [prebuildify, '--napi', '--strip', '--tag-libc', `--out=${pkgDir}`]
  status = spawnSync(process.execPath, args, { cwd: scratch, stdio: 'inherit', env }).status ?? 1
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
process.exit(status)
