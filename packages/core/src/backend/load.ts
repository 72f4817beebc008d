/**
 * Builds a backend from its spec, inside the pager thread. Built-in types
 * come from @faultline/backends; `{ type: 'module', module, options }` loads a
 * user's module that exports `createBackend(options, context)`.
 */
import { createRequire } from 'node:module'
import { isAbsolute, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { FaultlineError, invalidOption } from '../errors.js'
import type { Backend, BackendContext, BackendModule, BackendSpec } from '@faultline/contract'

export const BUILTIN_TYPES = ['memory', 'file', 'redis', 's3', 'http'] as const

export async function createBackend(spec: BackendSpec, context: BackendContext): Promise<Backend> {
  if (spec.type === 'module') return createFromModule(spec, context)
  // Loaded on first use, inside the pager thread: the application's threads never need it.
  const { builtinBackends } = await import('@faultline/backends')
  const factory = builtinBackends[spec.type]
  if (factory === undefined) {
    throw new FaultlineError(
      'ERR_UNKNOWN_BACKEND',
      `faultline: unknown backend type ${JSON.stringify(spec.type)} (available: ${[...Object.keys(builtinBackends), 'module'].join(', ')})`,
      { option: 'backend.type' },
    )
  }
  return factory(spec, context)
}

async function createFromModule(spec: BackendSpec, context: BackendContext): Promise<Backend> {
  const specifier = spec.module
  if (typeof specifier !== 'string' || specifier === '') {
    throw invalidOption('backend.module', 'must name the module to load: an absolute path or a package name')
  }
  let mod: Partial<BackendModule> & { default?: Partial<BackendModule> }
  try {
    // A package name is resolved from the application's working directory,
    // not from this package (which, under pnpm, cannot see the app's deps).
    const path = isAbsolute(specifier) ? specifier : createRequire(join(process.cwd(), 'noop.js')).resolve(specifier)
    mod = (await import(pathToFileURL(path).href)) as typeof mod
  } catch (cause) {
    throw new FaultlineError('ERR_UNKNOWN_BACKEND', `faultline: could not load backend module ${JSON.stringify(specifier)}: ${String(cause)}`, { option: 'backend.module', cause })
  }
  const create = mod.createBackend ?? mod.default?.createBackend
  if (typeof create !== 'function') {
    throw new FaultlineError('ERR_UNKNOWN_BACKEND', `faultline: backend module ${JSON.stringify(specifier)} does not export createBackend(options, context)`, { option: 'backend.module' })
  }
  const options = (spec.options ?? {}) as Record<string, unknown>
  return create(options, context)
}
