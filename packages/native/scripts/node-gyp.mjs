// Finds node-gyp and the Node headers for compiling the addon, and says
// precisely what is missing when something is. Under pnpm, node-gyp ignores
// npm's `nodedir` and tries to download headers, which fails offline, so the
// headers that ship with the running Node (`<prefix>/include/node`) are
// always passed explicitly.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

export const nodedir = join(dirname(process.execPath), '..')

/** Throws an Error naming each missing build requirement. */
export function checkBuildRequirements() {
  const missing = []
  if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
    missing.push(`Node's headers (expected ${nodedir}/include/node/node_api.h; install Node.js with its headers, e.g. the official tarball or your distribution's nodejs-dev package)`)
  }
  const cxx = process.env.CXX || 'c++'
  if (!runs(cxx, ['--version'])) missing.push(`a C++17 compiler (\`${cxx} --version\` failed; install g++ or clang, e.g. \`apt-get install g++\`, or set CXX)`)
  if (!runs('make', ['--version'])) missing.push('make (e.g. `apt-get install make`)')
  const python = process.env.PYTHON || 'python3'
  if (!runs(python, ['--version'])) missing.push(`Python 3 for node-gyp (\`${python} --version\` failed; install python3 or set PYTHON)`)
  if (findNodeGyp() === undefined) missing.push('node-gyp (npm and pnpm bundle it; with another client: `npm install -g node-gyp`)')
  if (missing.length > 0) throw new Error(`cannot compile the native addon; missing: ${missing.map((m) => `\n  - ${m}`).join('')}`)
}

/** For the build scripts: says what is missing and exits 1, or returns. */
export function exitUnlessBuildable() {
  try {
    checkBuildRequirements()
  } catch (err) {
    console.error(`faultline: ${err.message}`)
    process.exit(1)
  }
}

/** The node-gyp entry point: the one npm or pnpm runs scripts with, else a local or global install. */
export function findNodeGyp() {
  const fromClient = process.env.npm_config_node_gyp
  if (fromClient && existsSync(fromClient)) return fromClient
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js')
  } catch {
    return undefined
  }
}

/** Runs node-gyp with the local headers; exits the process on failure. */
export function nodeGyp(cwd, args, env = process.env) {
  const gyp = findNodeGyp()
  const result = spawnSync(process.execPath, [gyp, ...args, `--nodedir=${nodedir}`], { cwd, stdio: 'inherit', env })
  if (result.status !== 0) {
    console.error(`faultline: node-gyp ${args[0]} failed (exit ${result.status ?? result.signal})`)
    process.exit(result.status ?? 1)
  }
}

function runs(command, args) {
  const result = spawnSync(command, args, { stdio: 'ignore' })
  return result.status === 0
}
