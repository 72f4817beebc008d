/**
 * faultline as a dependency: the packages packed, installed from their
 * tarballs into fresh projects with npm, pnpm and yarn, with no working C++
 * compiler, then used as a new user would — a program, the CLI, a strict
 * TypeScript consumer — and the optional clients added afterwards.
 */
import { cpSync, existsSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'
import { beforeAll, describe, expect, inject, it } from 'vitest'
import { putObject, s3Spec, uniqueKey } from '../helpers/remote.js'
import { uniqueNamespace } from '../helpers/redis.js'
import { tempDir } from '../helpers/tmp.js'
import { emptyProject, installedBytes, noCompilerEnv, packAll, run, WORKSPACE, workspaceVersion } from './projects.js'
import { publicProperties } from './public-api.js'

const CONSUMER = join(WORKSPACE, 'test', 'fixtures', 'consumer')
const TSC = join(WORKSPACE, 'node_modules', 'typescript', 'bin', 'tsc')

describe.sequential('installed from packed tarballs', () => {
  const root = tempDir()
  const noCompiler = noCompilerEnv(root)
  let tarballs: Awaited<ReturnType<typeof packAll>>
  let s3: { spec: unknown; sha: string }

  beforeAll(async () => {
    tarballs = await packAll(join(root, 'packs'))
    const bytes = Buffer.alloc(2 << 20)
    for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE(i * 2654435761 >>> 0, i)
    const key = uniqueKey('consumer')
    await putObject(key, bytes)
    s3 = { spec: s3Spec(key), sha: (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex') }
  }, 300_000)

  const program = (project: string, env: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, [join(project, 'main.mjs')], project, { ...noCompiler, ...env })
  const withBackends = (missing: boolean): NodeJS.ProcessEnv => ({
    FAULTLINE_S3: JSON.stringify(s3),
    FAULTLINE_REDIS: `${inject('redisUrl')}/${uniqueNamespace('consumer')}`,
    FAULTLINE_EXPECT_MISSING: missing ? '1' : '0',
  })

  describe('npm', () => {
    let project: string
    beforeAll(async () => {
      project = emptyProject(join(root, 'npm'))
      cpSync(join(CONSUMER, 'main.mjs'), join(project, 'main.mjs'))
      await run('npm', ['install', '--no-audit', '--no-fund', tarballs.contract, tarballs.native, tarballs.backends, tarballs.core], project, noCompiler)
    }, 180_000)

    it('installs without a compiler, from the prebuild, and maps a file and memory', async () => {
      expect(existsSync(join(project, 'node_modules', '@faultline', 'native', 'build'))).toBe(false)
      const { stdout } = await program(project)
      expect(stdout).toContain('ok file region bytes')
      expect(stdout).toContain('ok memory region bytes')
    })

    it('installs neither the AWS SDK nor ioredis; s3:// and redis:// then name the package to install', async () => {
      for (const pkg of ['ioredis', '@aws-sdk/client-s3']) {
        const { stdout } = await run('npm', ['ls', '--all', '--parseable', pkg], project).catch((e: Error) => ({ stdout: e.message }))
        expect(stdout).not.toContain(join('node_modules', pkg))
        expect(existsSync(join(project, 'node_modules', pkg))).toBe(false)
      }
      const { stdout } = await program(project, withBackends(true))
      expect(stdout).toContain('ok missing @aws-sdk/client-s3 error')
      expect(stdout).toContain('ok missing ioredis error')
      console.log(`faultline installed size, file and memory only (npm): ${((await installedBytes(join(project, 'node_modules'))) / 2 ** 20).toFixed(1)} MiB`)
    }, 60_000)

    it('runs the CLI: `npx faultline --help` and the main job', async () => {
      const help = await run('npx', ['--no-install', 'faultline', '--help'], project, noCompiler)
      expect(help.stdout).toMatch(/^usage: faultline/)
      const main = await run('npx', ['--no-install', 'faultline', '--size', '32M'], project, noCompiler)
      expect(main.stdout).toMatch(/verified/i)
    }, 120_000)

    it('type-checks a strict consumer (node16 and bundler resolution); every public option and stats field is used and documented', async () => {
      cpSync(join(CONSUMER, 'uses-api.ts'), join(project, 'uses-api.ts'))
      const base = { strict: true, noUncheckedIndexedAccess: true, target: 'ES2022', lib: ['ES2023'], noEmit: true, types: ['node'], typeRoots: [join(WORKSPACE, 'node_modules', '@types')] }
      for (const [module, moduleResolution] of [['node16', 'node16'], ['esnext', 'bundler']]) {
        const config = join(project, `tsconfig.${moduleResolution}.json`)
        await import('node:fs').then((fs) => fs.writeFileSync(config, JSON.stringify({ compilerOptions: { ...base, module, moduleResolution }, files: ['uses-api.ts'] })))
        await run(process.execPath, [TSC, '-p', config], project)
      }
      const properties = publicProperties(join(project, 'uses-api.ts'), {
        strict: true, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, target: ts.ScriptTarget.ES2022,
        types: ['node'], typeRoots: [join(WORKSPACE, 'node_modules', '@types')],
      })
      expect(properties.length).toBeGreaterThan(40)
      const source = readFileSync(join(project, 'uses-api.ts'), 'utf8')
      expect(properties.filter((p) => !p.documented).map((p) => p.path)).toEqual([])
      expect(properties.filter((p) => !new RegExp(`\\b${p.name}\\b`).test(source)).map((p) => p.path)).toEqual([])
    }, 120_000)

    it('without a prebuild, the install compiles, and says which tool is missing when it cannot', async () => {
      const native = join(project, 'node_modules', '@faultline', 'native')
      renameSync(join(native, 'prebuilds'), join(root, 'prebuilds-aside'))
      try {
        const failed = await run(process.execPath, [join(native, 'scripts', 'install.mjs')], native, noCompiler).then(
          () => undefined,
          (e: Error) => e.message,
        )
        expect(failed).toMatch(/cannot compile the native addon; missing:[\s\S]*C\+\+17 compiler[\s\S]*make/)
        const load = await program(project).then(() => '', (e: Error) => e.message)
        expect(load).toMatch(/no native addon loads here[\s\S]*npm rebuild @faultline\/native/)
        await run('npm', ['rebuild', '@faultline/native'], project, {}, 300_000)
        expect(existsSync(join(native, 'build', 'Release', 'faultline.node'))).toBe(true)
        expect((await program(project)).stdout).toContain('ok file region bytes')
      } finally {
        renameSync(join(root, 'prebuilds-aside'), join(native, 'prebuilds'))
      }
    }, 300_000)

    it('with @aws-sdk/client-s3 and ioredis installed afterwards, s3:// and redis:// work', async () => {
      await run('npm', ['install', '--no-audit', '--no-fund', `@aws-sdk/client-s3@${workspaceVersion('@aws-sdk/client-s3')}`, `ioredis@${workspaceVersion('ioredis')}`], project, noCompiler, 300_000)
      const { stdout } = await program(project, withBackends(false))
      expect(stdout).toContain('ok s3 region bytes')
      expect(stdout).toContain('ok redis region bytes')
      console.log(`faultline installed size with the S3 and Redis clients (npm): ${((await installedBytes(join(project, 'node_modules'))) / 2 ** 20).toFixed(1)} MiB`)
    }, 300_000)
  })

  it('pnpm add: installs without a compiler; s3:// works once the SDK is added', async () => {
    const project = emptyProject(join(root, 'pnpm'), { pnpm: { overrides: siblings('file:') } })
    cpSync(join(CONSUMER, 'main.mjs'), join(project, 'main.mjs'))
    await run('pnpm', ['add', tarballs.core], project, noCompiler, 180_000)
    expect((await program(project, { ...withBackends(true), FAULTLINE_REDIS: '' })).stdout).toContain('ok missing @aws-sdk/client-s3 error')
    await run('pnpm', ['add', `@aws-sdk/client-s3@${workspaceVersion('@aws-sdk/client-s3')}`], project, noCompiler, 300_000)
    const { stdout } = await program(project, { ...withBackends(false), FAULTLINE_REDIS: '' })
    expect(stdout).toContain('ok file region bytes')
    expect(stdout).toContain('ok s3 region bytes')
  }, 600_000)

  it('yarn (classic, from the registry): installs without a compiler and maps a file', async () => {
    const project = emptyProject(join(root, 'yarn'), { resolutions: siblings('file:') })
    cpSync(join(CONSUMER, 'main.mjs'), join(project, 'main.mjs'))
    await run('npm', ['exec', '--yes', 'yarn@1.22.22', '--', 'add', '--no-lockfile', `file:${tarballs.core}`], project, noCompiler, 300_000)
    expect((await program(project)).stdout).toContain('ok file region bytes')
  }, 600_000)

  /** Where core's own dependencies on its siblings come from: their tarballs, not the registry. */
  function siblings(prefix: string): Record<string, string> {
    return {
      '@faultline/contract': `${prefix}${tarballs.contract}`,
      '@faultline/native': `${prefix}${tarballs.native}`,
      '@faultline/backends': `${prefix}${tarballs.backends}`,
    }
  }
})
