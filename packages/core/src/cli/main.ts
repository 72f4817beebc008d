#!/usr/bin/env node
/** The `faultline` command. With no arguments it runs the main job. */
import { native, featureNames } from '@faultline/native'
import { FaultlineError } from '../errors.js'
import { DEFAULT_PAGE_SIZE } from '../options.js'
import { runMainJob, type RunOptions } from './run.js'
import { parseFlags } from './flags.js'
import { runDisagg, type DisaggOptions } from './disagg.js'
import { exportFile, importFile } from './transfer.js'
import { parseTransferArgs, TRANSFER_USAGE } from './transfer-args.js'
import { fetchStatus, formatStatus, parseServeArgs, runServe, SERVE_USAGE } from './serve.js'

const USAGE = `usage: faultline [run] [--size 256M] [--page-size 64K] [--random-pages N] [--keep]
       faultline bench [--backend URL] [--size 256M] [--max-resident 64M] [--page-size 64K]
                       [--pattern random|zipf] [--touches N]
                            memory-disaggregation run: working set ≫ maxResident
${TRANSFER_USAGE}
${SERVE_USAGE}
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
  const defaults: RunOptions = { size: 256 * 2 ** 20, pageSize: DEFAULT_PAGE_SIZE, randomPages: 2000, keep: false }
  const opts = parseFlags(args, defaults, { '--size': ['size', 'size'], '--page-size': ['pageSize', 'size'], '--random-pages': ['randomPages', 'count'], '--keep': ['keep', 'switch'] }, fail)
  if (opts.size % 4 !== 0) fail('--size must be a multiple of 4 bytes')
  return opts
}

function parseBenchArgs(args: string[]): DisaggOptions {
  const defaults: DisaggOptions = { backend: undefined, size: 256 * 2 ** 20, maxResident: 64 * 2 ** 20, pageSize: DEFAULT_PAGE_SIZE, pattern: 'random', touches: 20_000 }
  const opts = parseFlags(
    args,
    defaults,
    {
      '--backend': ['backend', 'string'],
      '--size': ['size', 'size'],
      '--max-resident': ['maxResident', 'size'],
      '--page-size': ['pageSize', 'size'],
      '--pattern': ['pattern', ['random', 'zipf']],
      '--touches': ['touches', 'count'],
    },
    fail,
  )
  if (opts.touches === 0) fail('--touches must be at least 1')
  return opts
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  // `faultline bench --help` too: asking for help is never an argument error.
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
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
    case 'serve': {
      const a = parseServeArgs(rest, fail)
      if (!a.status) return runServe(a, (line) => process.stdout.write(`${line}\n`))
      const status = await fetchStatus(a.socket!)
      process.stdout.write(`${a.json ? JSON.stringify(status) : formatStatus(status)}\n`)
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
