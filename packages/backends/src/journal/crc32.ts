/**
 * CRC-32 (the zlib/PNG polynomial), continuing from `value`. zlib's native
 * one exists from Node 20.15; before that a table gives the same values, so
 * a journal written under one Node reads under another.
 */
import * as zlib from 'node:zlib'

export type Crc32 = (data: Uint8Array, value?: number) => number

export const crc32: Crc32 = typeof zlib.crc32 === 'function' ? (data, value = 0) => zlib.crc32(data, value) : tableCrc32

let table: Uint32Array | undefined

export function tableCrc32(data: Uint8Array, value = 0): number {
  table ??= makeTable()
  let crc = ~value >>> 0
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8)
  return ~crc >>> 0
}

function makeTable(): Uint32Array {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
}
