import { closeSync, openSync, writeSync } from 'node:fs'

/**
 * The kernel copies from the view into `sink` (fs.writeSync): a fault it
 * takes on a page that cannot be served fails the call with EFAULT, which a
 * test can see, where a JS access would get SIGBUS.
 */
export function kernelCopy(view: Uint8Array, sink: string): { ok: true } | { ok: false; code: string | undefined } {
  const fd = openSync(sink, 'w')
  try {
    writeSync(fd, view)
    return { ok: true }
  } catch (err) {
    return { ok: false, code: (err as NodeJS.ErrnoException).code }
  } finally {
    closeSync(fd)
  }
}
