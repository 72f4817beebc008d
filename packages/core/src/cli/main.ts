#!/usr/bin/env node
/** The `faultline` command. With no arguments it runs the main job. */
import { native, featureNames } from '@faultline/native'
import { FaultlineError } from '../errors.js'
import { DEFAULT_PAGE_SIZE } from '../options.js'
import { parseSize } from './progress.js'
import { runMainJob, type RunOptions } from './run.js'
import { runDisagg, type DisaggOptions } from './disagg.js'
import { exportFile, importFile } from './transfer.js'
import { parseTransferArgs, TRANSFER_USAGE } from './transfer-args.js'

const USAGE = `usage: faultline [run] [--size 256M] [--page-size 64K] [--random-pages N] [--keep]
       faultline bench [--backend URL] [--size 256M] [--max-resident 64M] [--page-size 64K]
                       [--pattern random|zipf] [--touches N]
                            memory-disaggregation run: working set ≫ maxResident
${TRANSFER_USAGE}
       faultline probe      print the userfaultfd features this kernel offers
       faultline --help

With no arguments, runs the main job: creates a dataset in a temporary
directory, maps it through a file backend, reads it back sequentially and at
random, verifies every byte and prints fault counts and latencies.`

function fail(message: string): never {
  process.stderr.write(`faultline: ${message}\n${USAGE}\n`)
  process.exit(2)
}

function parseRunArgs(args: string[]): RunOptions {
  const opts: RunOptions = { size: 256 * 2 ** 20, pageSize: DEFAULT_PAGE_SIZE, randomPages: 2000, keep: false }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const value = (): string => args[++i] ?? fail(`${arg} needs a value`)
    switch (arg) {
      case '--size':
        opts.size = parseSize(value()) ?? fail(`--size takes a size like 256M (got ${args[i]})`)
        break
      case '--page-size':
        opts.pageSize = parseSize(value()) ?? fail(`--page-size takes a size like 64K (got ${args[i]})`)
        break
      case '--random-pages':
        opts.randomPages = Number.parseInt(value(), 10)
        if (!(opts.randomPages >= 0)) fail(`--random-pages takes a count (got ${args[i]})`)
        break
      case '--keep':
        opts.keep = true
        break
      default:
        fail(`unknown argument ${arg}`)
    }
  }
  if (opts.size % 4 !== 0) fail('--size must be a multiple of 4 bytes')
  return opts
}

function parseBenchArgs(args: string[]): DisaggOptions {
  const opts: DisaggOptions = { backend: undefined, size: 256 * 2 ** 20, maxResident: 64 * 2 ** 20, pageSize: DEFAULT_PAGE_SIZE, pattern: 'random', touches: 20_000 }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const value = (): string => args[++i] ?? fail(`${arg} needs a value`)
    switch (arg) {
      case '--backend':
        opts.backend = value()
        break
      case '--size':
        opts.size = parseSize(value()) ?? fail(`--size takes a size like 256M (got ${args[i]})`)
        break
      case '--max-resident':
        opts.maxResident = parseSize(value()) ?? fail(`--max-resident takes a size like 64M (got ${args[i]})`)
        break
      case '--page-size':
        opts.pageSize = parseSize(value()) ?? fail(`--page-size takes a size like 64K (got ${args[i]})`)
        break
      case '--pattern': {
        const p = value()
        if (p !== 'random' && p !== 'zipf') fail(`--pattern takes random or zipf (got ${p})`)
        opts.pattern = p
        break
      }
      case '--touches':
        opts.touches = Number.parseInt(value(), 10)
        if (!(opts.touches > 0)) fail(`--touches takes a count (got ${args[i]})`)
        break
      default:
        fail(`unknown argument ${arg}`)
    }
  }
  return opts
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`)
      return 0
    case 'import': {
      const a = parseTransferArgs('import', rest, fail)
      await importFile(a.from, a.to, a.options, (line) => process.stdout.write(`${line}\n`))
      return 0
    }
    case 'export': {
      const a = parseTransferArgs('export', rest, fail)
      await exportFile(a.from, a.to, a.options, (line) => process.stdout.write(`${line}\n`))
      return 0
    }
    case 'probe': {
      const p = native.probe()
      process.stdout.write(`userfaultfd via ${p.via}${p.userModeOnly ? ' (user-mode faults only)' : ''}\nfeatures 0x${p.features.toString(16)}: ${featureNames(p.features).join(' ')}\n`)
      return 0
    }
    case 'bench': {
      const r = await runDisagg(parseBenchArgs(rest), (line) => process.stdout.write(`${line}\n`))
      return r.verified ? 0 : 1
    }
    case undefined:
    case 'run':
      return (await runMainJob(parseRunArgs(rest), (line) => process.stdout.write(`${line}\n`))) ? 0 : 1
    default:
      if (command.startsWith('--')) return (await runMainJob(parseRunArgs(argv), (line) => process.stdout.write(`${line}\n`))) ? 0 : 1
      fail(`unknown command ${command}`)
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    if (err instanceof FaultlineError) process.stderr.write(`${err.message}\n`)
    else process.stderr.write(`faultline: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 1
  },
)
