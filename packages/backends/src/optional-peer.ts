/**
 * The Redis and S3 clients are optional peer dependencies: a user who maps
 * files or memory installs neither. Their backends are loaded on first use,
 * and a missing client becomes an error that says what to install.
 */
import { FaultlineError } from '@faultline/contract'

export async function withPeer<T>(scheme: string, peer: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (cause) {
    if (!isMissingPackage(cause, peer)) throw cause
    throw new FaultlineError('ERR_BACKEND_UNAVAILABLE', `faultline: ${scheme} needs ${peer}, which is not installed; npm install ${peer}`, { option: 'backend', cause })
  }
}

function isMissingPackage(err: unknown, name: string): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown }
  // Node names the package it could not find: "Cannot find package 'ioredis' imported from …".
  return code === 'ERR_MODULE_NOT_FOUND' && typeof message === 'string' && message.includes(`'${name}'`)
}
