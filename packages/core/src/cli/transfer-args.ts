/** Command-line arguments of `faultline import` and `faultline export`. */
import { DEFAULT_PAGE_SIZE } from '../options.js'
import { parseSize } from './progress.js'
import type { TransferOptions } from './transfer.js'

export const TRANSFER_USAGE = `       faultline import <file> <backend-url> [--page-size 64K] [--batch-pages 64] [--concurrency 4]
                            copy a file into a backend in the region layout
       faultline export <backend-url> <file> [--page-size 64K] [--size N] [--batch-pages 64] [--concurrency 4]
                            copy a backend's data (page store, S3 object, HTTP file…) to a file`

export interface TransferArgs {
  /** `import`: [file, url]; `export`: [url, file]. */
  from: string
  to: string
  options: TransferOptions
}

export function parseTransferArgs(command: 'import' | 'export', args: string[], fail: (message: string) => never): TransferArgs {
  const options: TransferOptions = { pageSize: DEFAULT_PAGE_SIZE, batchPages: 64, concurrency: 4, size: undefined }
  const positional: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const value = (): string => args[++i] ?? fail(`${arg} needs a value`)
    const count = (max: number): number => {
      const n = Number(value())
      return Number.isSafeInteger(n) && n >= 1 && n <= max ? n : fail(`${arg} takes a whole number from 1 to ${max} (got ${args[i]})`)
    }
    switch (arg) {
      case '--page-size': {
        const size = parseSize(value())
        if (size === undefined || size % 4096 !== 0 || (size & (size - 1)) !== 0) fail(`--page-size takes a power of two, a multiple of 4K, like 64K (got ${args[i]})`)
        options.pageSize = size
        break
      }
      case '--size':
        if (command !== 'export') fail('--size is an export option: import takes the file\'s length')
        options.size = parseSize(value()) ?? fail(`--size takes a size like 256M (got ${args[i]})`)
        break
      case '--batch-pages':
        options.batchPages = count(4096)
        break
      case '--concurrency':
        options.concurrency = count(64)
        break
      default:
        if (arg.startsWith('--')) fail(`unknown ${command} option ${arg}`)
        positional.push(arg)
    }
  }
  if (positional.length !== 2) fail(command === 'import' ? 'import takes <file> <backend-url>' : 'export takes <backend-url> <file>')
  return { from: positional[0]!, to: positional[1]!, options }
}
