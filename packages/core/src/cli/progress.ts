/** A one-line progress bar on stderr, drawn only when stderr is a terminal. */
export class Progress {
  private readonly tty = process.stderr.isTTY === true
  private lastDraw = 0
  private readonly started = performance.now()

  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(done: number): void {
    if (!this.tty) return
    const now = performance.now()
    if (now - this.lastDraw < 50 && done < this.total) return
    this.lastDraw = now
    const width = 30
    const fraction = this.total === 0 ? 1 : Math.min(1, done / this.total)
    const filled = Math.round(fraction * width)
    const seconds = (now - this.started) / 1000
    const rate = seconds > 0 ? done / seconds : 0
    process.stderr.write(`\r${this.label.padEnd(18)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${formatBytes(rate)}/s `)
  }

  done(): void {
    if (this.tty) process.stderr.write('\r\x1b[K')
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let u = 0
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024
    u++
  }
  return `${n.toFixed(u === 0 ? 0 : 1)} ${units[u]}`
}

/** Parses sizes like `256M`, `64K`, `1G`, `4096`. Returns undefined when malformed. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$/i.exec(text.trim())
  if (!m) return undefined
  const unit = (m[2] ?? '').toUpperCase().replace(/I?B$/, '')
  const scale = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[unit]
  if (scale === undefined) return undefined
  const value = Number(m[1]) * scale
  return Number.isSafeInteger(value) ? value : undefined
}
