// Compiles the addon into build/Release with node-gyp against the running
// Node's headers: configure once, then let make rebuild only what changed.
//
// FAULTLINE_SANITIZE=address,undefined (a -fsanitize= list) builds the
// sanitizer addon instead, into build-sanitize/build/Release, so that the
// normal build/Release stays as it is; scripts/sanitize.sh loads it through
// FAULTLINE_ADDON_PATH.
import { existsSync, mkdirSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exitUnlessBuildable, nodeGyp } from './node-gyp.mjs'

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..')
exitUnlessBuildable()
const jobs = process.env.JOBS ?? 'max'
const sanitize = process.env.FAULTLINE_SANITIZE ?? ''
if (sanitize === '') {
  // Configure again when binding.gyp changed since the Makefile was made
  // (a checkout moved to another branch): make would otherwise regenerate it
  // with the gyp of whichever node-gyp configured first, which may be gone
  // or not executable.
  const makefile = join(pkgDir, 'build', 'Makefile')
  const fresh = existsSync(makefile) && statSync(makefile).mtimeMs >= statSync(join(pkgDir, 'binding.gyp')).mtimeMs
  const steps = fresh ? ['build'] : ['configure', 'build']
  for (const verb of steps) nodeGyp(pkgDir, [verb, `--jobs=${jobs}`])
} else {
  if (!/^[a-z-]+(,[a-z-]+)*$/.test(sanitize)) {
    console.error(`faultline: FAULTLINE_SANITIZE must be a -fsanitize= list such as address,undefined (got ${JSON.stringify(sanitize)})`)
    process.exit(1)
  }
  // node-gyp always builds into ./build, so the sanitizer build runs in a
  // directory of its own that links to the sources. Configure every time:
  // it is cheap, and the sanitizer list may have changed.
  const dir = join(pkgDir, 'build-sanitize')
  mkdirSync(dir, { recursive: true })
  for (const part of ['package.json', 'binding.gyp', 'src', 'node_modules']) {
    rmSync(join(dir, part), { force: true })
    symlinkSync(join(pkgDir, part), join(dir, part))
  }
  // Unknown node-gyp options become gyp variables (config.gypi).
  nodeGyp(dir, ['configure', `--faultline_sanitize=${sanitize}`])
  nodeGyp(dir, ['build', `--jobs=${jobs}`])
  console.error(`faultline: sanitizer addon (-fsanitize=${sanitize}) at ${join(dir, 'build', 'Release', 'faultline.node')}`)
}
