import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { fillPattern } from '@faultline/core/pattern'

const CHUNK = 8 * 2 ** 20

/** Writes `size` bytes of the deterministic pattern to `path`; returns its SHA-256. */
export function writePatternFile(path: string, size: number): string {
  const fd = openSync(path, 'w')
  const hash = createHash('sha256')
  const buffer = Buffer.alloc(CHUNK)
  try {
    for (let offset = 0; offset < size; offset += CHUNK) {
      const chunk = buffer.subarray(0, Math.min(CHUNK, size - offset))
      fillPattern(chunk, offset)
      writeSync(fd, chunk, 0, chunk.byteLength, offset)
      hash.update(chunk)
    }
  } finally {
    closeSync(fd)
  }
  return hash.digest('hex')
}

/** A sparse file of `size` bytes holding the pattern only in the given byte ranges. */
export function writeSparseFile(path: string, size: number, ranges: Array<[number, number]>): void {
  const fd = openSync(path, 'w')
  try {
    ftruncateSync(fd, size)
    for (const [start, length] of ranges) {
      const chunk = Buffer.alloc(length)
      fillPattern(chunk, start)
      writeSync(fd, chunk, 0, length, start)
    }
  } finally {
    closeSync(fd)
  }
}

/** The pattern as a SharedArrayBuffer-backed array, for the memory backend. */
export function sharedPattern(size: number): Uint8Array {
  const data = new Uint8Array(new SharedArrayBuffer(size))
  fillPattern(data, 0)
  return data
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
