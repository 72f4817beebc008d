/**
 * Redis Cluster key slots (CRC16/XMODEM of the key, or of its hash tag, mod
 * 16384), computed here so a batch can be split by node before it is sent:
 * a multi-key command or a pipeline must stay within one node.
 */

const TABLE = (() => {
  const t = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i << 8
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1
    t[i] = c & 0xffff
  }
  return t
})()

function crc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!
  return crc
}

/** The cluster slot of `key`: only the part inside the first non-empty `{…}` counts, if there is one. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key)
  const open = bytes.indexOf(0x7b) // {
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1) // }
    if (close > open + 1) return crc16(bytes, open + 1, close) & 16383
  }
  return crc16(bytes, 0, bytes.length) & 16383
}
