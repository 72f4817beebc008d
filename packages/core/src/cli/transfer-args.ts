/** Command-line arguments of `faultline import` and `faultline export`. */
import { DEFAULT_PAGE_SIZE } from '../options.js'
import { parseFlags, type FlagKind } from './flags.js'
import type { TransferOptions } from './transfer.js'

export const TRANSFER_USAGE = `       faultline import <file> <backend-url> [--page-size 64K] [--batch-pages 64] [--concurrency 4]
                            copy a file into a backend in the region layout
       faultline export <backend-url> <file> [--page-size 64K] [--size N] [--batch-pages 64] [--concurrency 4]
                            copy a backend's data (page store, S3 object, HTTP file…) to a file`

export interface TransferArgs {
  /** `import`: the file; `export`: the backend URL. */
  from: string
  /** `import`: the backend URL; `export`: the file. */
  to: string
  options: TransferOptions
}

const FLAGS: Readonly<Record<string, readonly [keyof TransferOptions, FlagKind]>> = {
  '--page-size': ['pageSize', 'size'],
  '--batch-pages': ['batchPages', 'count'],
  '--concurrency': ['concurrency', 'count'],
}

export function parseTransferArgs(command: 'import' | 'export', args: string[], fail: (message: string) => never): TransferArgs {
  // Every flag takes a value; anything else is one of the two operands, wherever it stands.
  const flags: string[] = []
  const positional: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg.startsWith('--')) flags.push(arg, ...(i + 1 < args.length ? [args[++i]!] : []))
    else positional.push(arg)
  }
  const spec = command === 'export' ? { ...FLAGS, '--size': ['size', 'size'] as const } : FLAGS
  const options = parseFlags<TransferOptions>(flags, { pageSize: DEFAULT_PAGE_SIZE, batchPages: 64, concurrency: 4, size: undefined }, spec, fail)
  const { pageSize, batchPages, concurrency } = options
  if (pageSize % 4096 !== 0 || (pageSize & (pageSize - 1)) !== 0 || pageSize > 2 ** 30) fail(`--page-size takes a power of two, a multiple of 4K, like 64K (got ${pageSize})`)
  if (batchPages < 1 || batchPages > 4096) fail(`--batch-pages takes a whole number from 1 to 4096 (got ${batchPages})`)
  if (concurrency < 1 || concurrency > 64) fail(`--concurrency takes a whole number from 1 to 64 (got ${concurrency})`)
  if (positional.length !== 2) fail(command === 'import' ? 'import takes <file> <backend-url>' : 'export takes <backend-url> <file>')
  return { from: positional[0]!, to: positional[1]!, options }
}
