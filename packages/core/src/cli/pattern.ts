/**
 * A deterministic dataset: the 32-bit word at index i holds mix(i). Any
 * range can be generated or checked on its own, so a verifier needs neither
 * the file nor a copy of it.
 */

function mix(i: number): number {
  let x = Math.imul(i ^ (i >>> 16), 0x7feb352d)
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b)
  return (x ^ (x >>> 16)) >>> 0
}

/** Fills `out` with the pattern as it stands at byte `offset` (a multiple of 4). */
export function fillPattern(out: Uint8Array, offset: number): void {
  const words = new Uint32Array(out.buffer, out.byteOffset, out.byteLength >>> 2)
  const first = offset >>> 2
  for (let i = 0; i < words.length; i++) words[i] = mix(first + i)
}

/** Index of the first byte of `data` (at `offset`) that differs from the pattern, or -1. */
export function checkPattern(data: Uint8Array, offset: number): number {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >>> 2)
  const first = offset >>> 2
  for (let i = 0; i < words.length; i++) {
    if (words[i] !== mix(first + i)) return i * 4
  }
  return -1
}
