/** A writer that takes a store's lease in a child process and is SIGKILLed: its lease is left to expire. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { BackendSpec } from '@faultline/core'

const leaseHolder = fileURLToPath(new URL('../fixtures/lease-holder.mjs', import.meta.url))

/** Opens `spec` read-write in a child process, SIGKILLs it once the region is open, and resolves with the child's pid. */
export async function crashedWriter(spec: BackendSpec): Promise<string> {
  const child = spawn(process.execPath, [leaseHolder, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const pid = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))
    child.once('exit', (code) => reject(new Error(`lease holder exited early (${code})`)))
  })
  child.kill('SIGKILL')
  await new Promise((r) => child.once('exit', r))
  return pid
}

/** Calls `open` until it succeeds or `ms` have passed (then its last error is thrown); resolves with how long it took. */
export async function retryUntilOpen(open: () => Promise<{ close(): Promise<void> }>, ms: number): Promise<number> {
  const started = Date.now()
  for (;;) {
    try {
      await (await open()).close()
      return Date.now() - started
    } catch (err) {
      if (Date.now() - started > ms) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
