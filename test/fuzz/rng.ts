/**
 * A small seeded PRNG (sfc32, seeded through splitmix32) for the fuzzers:
 * the same seed gives the same cases on every machine and Node version,
 * which Math.random cannot promise.
 */

/** Mixes a 32-bit value well enough to seed from (the splitmix32 finaliser). */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) >>> 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0
  return (x ^ (x >>> 16)) >>> 0
}

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    this.a = mix32(seed)
    this.b = mix32(this.a)
    this.c = mix32(this.b)
    this.d = 1
    // sfc32's first outputs are weak: warm it up.
    for (let i = 0; i < 12; i++) this.next()
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** A whole number in [0, n), for n up to 2^32. */
  int(n: number): number {
    return Math.floor((this.next() / 2 ** 32) * n)
  }

  /** A whole number in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing')
    return items[this.int(items.length)]!
  }

  /** Picks by weight: `[[weight, value], …]`. */
  weighted<T>(choices: ReadonlyArray<readonly [number, T]>): T {
    const total = choices.reduce((sum, [w]) => sum + w, 0)
    let x = this.next() / 2 ** 32 * total
    for (const [w, value] of choices) {
      if ((x -= w) < 0) return value
    }
    return choices[choices.length - 1]![1]
  }

  /** A length skewed small: mostly under 16, sometimes up to `max`. */
  size(max: number): number {
    const bits = this.int(Math.ceil(Math.log2(max + 1)) + 1)
    return Math.min(max, this.int(2 ** bits))
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let i = 0
    for (; i + 4 <= n; i += 4) out.writeUInt32LE(this.next(), i)
    for (; i < n; i++) out[i] = this.next() & 0xff
    return out
  }

  /** A new generator whose stream depends on this one's state and `label` only. */
  fork(label: number): Rng {
    return new Rng(this.next() ^ mix32(label))
  }
}
