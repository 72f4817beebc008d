/**
 * Finds and loads the compiled addon, once per thread (it is context-aware).
 * node-gyp-build prefers a local build (`build/Release`, as in the workspace
 * or after a compile at install) and otherwise picks the prebuild in
 * `prebuilds/<platform>-<arch>/` that matches this Node and libc.
 *
 * FAULTLINE_ADDON_PATH names another addon file to load instead: the
 * sanitizer build (scripts/sanitize.sh) is loaded this way, so the suites
 * run against it without replacing build/Release. It is read per thread,
 * so Workers and child processes that inherit the environment load it too.
 */
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..')

let loaded: { addon: unknown } | { error: unknown } | undefined

/** The addon's exports, or the error that kept it from loading. */
export function loadAddon(): { addon: unknown } | { error: unknown } {
  if (loaded === undefined) {
    try {
      const override = process.env.FAULTLINE_ADDON_PATH
      if (override !== undefined && override !== '') {
        loaded = { addon: require(resolve(override)) as unknown }
      } else {
        const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown
        loaded = { addon: nodeGypBuild(packageDir) }
      }
    } catch (error) {
      loaded = { error }
    }
  }
  return loaded
}

export function missingAddonMessage(): string {
  const override = process.env.FAULTLINE_ADDON_PATH
  if (override !== undefined && override !== '') {
    return `faultline: the addon named by FAULTLINE_ADDON_PATH (${override}) does not load; see the error's cause`
  }
  return (
    `faultline: no native addon loads here (${process.platform}-${process.arch}, Node ${process.version}): ` +
    `the package has no prebuild for this platform and none was compiled at install. ` +
    `Run \`npm rebuild @faultline/native\` with a C++ compiler, make and Python 3 installed ` +
    `(in the faultline workspace: \`pnpm install\`); see docs/installing.md.`
  )
}
