/** Table-driven parsing of `--flag value` arguments for the CLI's commands. */
import { parseSize } from './progress.js'

/** How a flag's value is read: a size (`64K`), a whole count, a string, a switch, or one of a list. */
export type FlagKind = 'size' | 'count' | 'string' | 'switch' | readonly string[]

export function parseFlags<T extends object>(args: readonly string[], defaults: T, spec: Readonly<Record<string, readonly [keyof T, FlagKind]>>, fail: (message: string) => never): T {
  const opts = { ...defaults } as Record<keyof T, unknown>
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!
    const entry = spec[flag]
    if (entry === undefined) fail(`unknown argument ${flag} (known: ${Object.keys(spec).join(', ')})`)
    const [key, kind] = entry
    if (kind === 'switch') {
      opts[key] = true
      continue
    }
    const text = args[++i] ?? fail(`${flag} needs a value`)
    if (kind === 'size') opts[key] = parseSize(text) ?? fail(`${flag} takes a size like 64K or 256M (got ${text})`)
    else if (kind === 'count') {
      const n = Number(text)
      opts[key] = Number.isSafeInteger(n) && n >= 0 ? n : fail(`${flag} takes a whole number (got ${text})`)
    } else if (kind === 'string') opts[key] = text
    else opts[key] = kind.includes(text) ? text : fail(`${flag} takes ${kind.join(' or ')} (got ${text})`)
  }
  return opts as T
}
