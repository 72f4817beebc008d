/**
 * Fresh projects for the packed-install test: the packages packed as a
 * release would pack them, installed with npm, pnpm or yarn into an empty
 * ESM project, with every compiler on the PATH replaced by one that fails.
 */
import { execFile } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const exec = promisify(execFile)

export const WORKSPACE = fileURLToPath(new URL('../..', import.meta.url))
export const PACKAGES = ['contract', 'native', 'backends', 'core'] as const

export interface Run {
  stdout: string
  stderr: string
}

/** Runs a command; a failure carries its output, so the test says why. */
export async function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { cwd, env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 })
    return { stdout, stderr }
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${e.message}\n--- stdout\n${e.stdout ?? ''}\n--- stderr\n${e.stderr ?? ''}`)
  }
}

/**
 * A directory of `cc`, `c++`, `gcc`, `g++`, `clang`, `clang++` and `make`
 * that all fail, put first on the PATH, with CC and CXX pointing at it too.
 */
export function noCompilerEnv(dir: string): NodeJS.ProcessEnv {
  const bin = join(dir, 'no-compiler')
  mkdirSync(bin, { recursive: true })
  const fail = join(bin, 'fail')
  writeFileSync(fail, '#!/bin/sh\necho "no compiler on this machine" >&2\nexit 1\n')
  chmodSync(fail, 0o755)
  for (const name of ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'make']) {
    writeFileSync(join(bin, name), `#!/bin/sh\nexec ${fail} "$@"\n`)
    chmodSync(join(bin, name), 0o755)
  }
  return { PATH: `${bin}:${process.env.PATH ?? ''}`, CC: fail, CXX: fail }
}

/** Packs every package into `dest`; returns the tarballs by package directory name. */
export async function packAll(dest: string): Promise<Record<(typeof PACKAGES)[number], string>> {
  // The native package's own script builds the prebuild (in a scratch copy,
  // leaving this workspace's build/Release alone). `pnpm pack` would run it
  // as prepack along with tsc, but tsc rewriting dist/ while other suites
  // import it is a race, and dist/ is already built by `pnpm install`.
  await run(process.execPath, [join(WORKSPACE, 'packages', 'native', 'scripts', 'prebuild.mjs')], join(WORKSPACE, 'packages', 'native'), {}, 300_000)
  const out = {} as Record<(typeof PACKAGES)[number], string>
  for (const name of PACKAGES) {
    const { stdout } = await run('pnpm', ['pack', '--config.ignore-scripts=true', '--pack-destination', dest], join(WORKSPACE, 'packages', name))
    const tarball = stdout.trim().split('\n').pop()?.trim()
    if (tarball === undefined || !tarball.endsWith('.tgz')) throw new Error(`pnpm pack printed no tarball for ${name}: ${stdout}`)
    out[name] = tarball
  }
  return out
}

/** An empty ESM project; `extra` is merged into its package.json (overrides, resolutions). */
export function emptyProject(dir: string, extra: Record<string, unknown> = {}): string {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', ...extra }, null, 2))
  return dir
}

/** The version of a package this workspace has installed, so projects get the one already in the caches. */
export function workspaceVersion(pkg: string): string {
  const path = join(WORKSPACE, 'node_modules', ...pkg.split('/'), 'package.json')
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version
}

/** Bytes under a directory as `du` counts them (following pnpm's links with `-L`). */
export async function installedBytes(dir: string, follow = false): Promise<number> {
  const { stdout } = await run('du', ['-s', '-B1', ...(follow ? ['-L'] : []), dir], dir)
  return Number(stdout.split('\t')[0])
}
