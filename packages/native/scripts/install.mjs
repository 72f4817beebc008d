// The package's `install` hook. The tarball ships a prebuilt addon for
// linux-x64 (prebuilds/); when one loads here nothing is compiled, so no
// compiler is needed. Otherwise — another platform, another libc, or
// `--build-from-source` / FAULTLINE_BUILD_FROM_SOURCE=1 — it compiles.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const pkgDir = join(here, '..')
const fromSource = ['1', 'true'].includes(process.env.FAULTLINE_BUILD_FROM_SOURCE ?? '') || process.env.npm_config_build_from_source === 'true'

if (!fromSource && prebuildLoads()) process.exit(0)
if (!fromSource) console.error(`faultline: no prebuilt addon loads on ${process.platform}-${process.arch}; compiling one with node-gyp`)
const result = spawnSync(process.execPath, [join(here, 'build-native.mjs')], { cwd: pkgDir, stdio: 'inherit' })
process.exit(result.status ?? 1)

function prebuildLoads() {
  try {
    createRequire(import.meta.url)('node-gyp-build')(pkgDir)
    return true
  } catch {
    return false
  }
}
