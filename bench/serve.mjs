// `faultline serve` scenarios of `pnpm bench`: the C test peer (test/serve/peer.c)
// touching one byte per 4 KiB page of a 256 MiB range, sequentially and at
// random, served by `faultline serve` over a local file and by the kernel
// floor for the same protocol (bench/serve-floor.c: UFFDIO_COPY straight from
// an mmap of the file, no JS, no backend). Best of three, taken in turns.
import { spawn, execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildC } from '../scripts/build-c.mjs'

const cli = fileURLToPath(new URL('../packages/core/dist/cli/main.js', import.meta.url))

function startHandler(cmd, args, ready) {
  // Their logs (a line per peer) would drown the table; kept for an error message.
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stderr.setEncoding('utf8').on('data', (c) => (log = (log + c).slice(-4000)))
  return new Promise((resolve, reject) => {
    let text = ''
    child.stdout.setEncoding('utf8').on('data', (c) => {
      text += c
      if (text.includes(ready)) resolve(child)
    })
    child.once('exit', (code) => reject(new Error(`${cmd} exited (${code}) before listening: ${text}${log}`)))
  })
}

const stop = (child) => new Promise((resolve) => {
  child.once('exit', resolve)
  child.kill('SIGTERM')
})

export async function serveScenarios({ quick, row, dir, path, bytes, outDir }) {
  const bin = buildC(join(outDir, 'c'))
  const touches = quick ? 2000 : 10000
  const subjects = [
    ['kernel floor: serve-floor (UFFDIO_COPY from an mmap of the file)', () => startHandler(bin.serveFloor, [join(dir, 'floor.sock'), path], 'listening'), join(dir, 'floor.sock')],
    ['faultline serve, file backend, 4K pages', () => startHandler(process.execPath, [cli, 'serve', '--socket', join(dir, 'fl4k.sock'), '--backend', `file://${path}`, '--page-size', '4K'], 'listening'), join(dir, 'fl4k.sock')],
    ['faultline serve, file backend, 64K pages', () => startHandler(process.execPath, [cli, 'serve', '--socket', join(dir, 'fl64k.sock'), '--backend', `file://${path}`], 'listening'), join(dir, 'fl64k.sock')],
  ]
  const handlers = []
  try {
    for (const [, start] of subjects) handlers.push(await start())
    for (const mode of ['seq', 'random']) {
      const best = subjects.map(() => undefined)
      for (let round = 0; round < 3; round++) {
        for (const [i, [, , socket]] of subjects.entries()) {
          if (mode === 'random' && i === 2) continue
          const args = [socket, String(bytes), '0', mode, ...(mode === 'random' ? ['--touches', String(touches)] : [])]
          const out = execFileSync(bin.peer, args, { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l)).at(-1)
          if (best[i] === undefined || out.seconds < best[i].seconds) best[i] = out
        }
      }
      const scenario = `serve ${mode} 4K touches (C peer)`
      const n = best[0].touches
      const m = (o) => ({ ms: o.seconds * 1000, gbps: (n * 4096) / o.seconds / 1e9, p50_us: o.p50_us, p99_us: o.p99_us })
      const floor = row(scenario, subjects[0][0], m(best[0]))
      // At random, 64 KiB pages make most touches hit a page already there: not comparable per fault.
      for (let i = 1; i < subjects.length; i++) if (mode === 'seq' || i === 1) row(scenario, subjects[i][0], m(best[i]), mode === 'random' ? { p50_us: floor.p50_us } : floor)
    }
  } finally {
    await Promise.all(handlers.map(stop))
    for (const [, , socket] of subjects) rmSync(socket, { force: true })
  }
}
