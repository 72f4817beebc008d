/**
 * Whole reads and writes at a position. The kernel may move fewer bytes than
 * asked (a signal arriving, a full disk) without an error; these go on until
 * done. Synchronous syscalls, never the libuv threadpool (see file.ts).
 */
import { readSync, writevSync } from 'node:fs'

/** Linux's IOV_MAX: the most buffers one writev takes. */
const IOV_MAX = 1024

/** Reads up to `length` bytes at `position` into `buffer` from `offset`; fewer only at end of file. Returns how many. */
export function readFully(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
  let got = 0
  while (got < length) {
    const n = readSync(fd, buffer, offset + got, length - got, position + got)
    if (n === 0) break
    got += n
  }
  return got
}

/** Writes every byte of `buffers`, in order, from `position` on. */
export function writeFully(fd: number, buffers: readonly Uint8Array[], position: number): void {
  let queue = buffers.filter((b) => b.byteLength > 0)
  let at = position
  while (queue.length > 0) {
    let n = writevSync(fd, queue.slice(0, IOV_MAX), at)
    if (n <= 0) throw new Error(`writev wrote nothing at byte ${at}`)
    at += n
    let done = 0
    while (done < queue.length && n >= queue[done]!.byteLength) n -= queue[done++]!.byteLength
    queue = queue.slice(done)
    if (n > 0) queue[0] = queue[0]!.subarray(n)
  }
}
