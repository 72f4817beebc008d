/**
 * Running `faultline serve` as a user would (the built CLI in a child
 * process) and peers against it.
 */
import { expect } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'

export const cli = fileURLToPath(new URL('../../packages/core/dist/cli/main.js', import.meta.url))
export const firecrackerPeer = fileURLToPath(new URL('./firecracker_peer.py', import.meta.url))

export interface RunningServer {
  process: ChildProcess
  socket: string
  /** Everything it printed so far. */
  log(): string
  stop(): Promise<number | null>
}

/** Starts `faultline serve` and resolves once it listens. */
export function startServer(socket: string, backend: string, extra: string[] = []): Promise<RunningServer> {
  const child = spawn(process.execPath, [cli, 'serve', '--socket', socket, '--backend', backend, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (text += c))
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (text += c))
  const server: RunningServer = {
    process: child,
    socket,
    log: () => text,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode)
        child.once('exit', (code) => resolve(code))
        child.kill('SIGTERM')
      }),
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`faultline serve did not start listening in 20 s:\n${text}`)), 20_000)
    const check = (): void => {
      if (!text.includes('listening on')) return
      clearTimeout(timer)
      child.stdout!.off('data', check)
      resolve(server)
    }
    child.stdout!.on('data', check)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`faultline serve exited (${code}) before listening:\n${text}`))
    })
  })
}

export interface PeerResult {
  pid: number
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** The JSON lines it printed. */
  lines: Array<Record<string, unknown>>
}

/** Runs a peer program to its end. */
export function runPeer(command: string, args: string[], onLine?: (line: Record<string, unknown>, child: ChildProcess) => void, timeoutMs = 120_000): Promise<PeerResult> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const lines: Array<Record<string, unknown>> = []
  let partial = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    stdout += c
    partial += c
    let nl: number
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl).trim()
      partial = partial.slice(nl + 1)
      if (!line.startsWith('{')) continue
      const value = JSON.parse(line) as Record<string, unknown>
      lines.push(value)
      onLine?.(value, child)
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ pid: child.pid!, code, signal, stdout, stderr, lines })
    })
  })
}

/** The server's status, as `faultline serve --status --json` prints it. */
export async function status(socket: string): Promise<{ attached: number; refused: number; peers: Array<{ pid: number; state: string; stats: { faults: number; bytesFetched: number; faultLatencyUs: { p50: number; p99: number } } }> }> {
  const r = await runPeer(process.execPath, [cli, 'serve', '--status', '--json', '--socket', socket])
  if (r.code !== 0) throw new Error(`faultline serve --status failed (${r.code}): ${r.stderr}`)
  return r.lines[0] as never
}

/** Sends one raw message without descriptors and returns the first reply line. */
export function rawHello(socket: string, text: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = connect(socket)
    let got = ''
    c.setEncoding('utf8')
    c.on('connect', () => c.write(text))
    c.on('data', (chunk: string) => {
      got += chunk
      const nl = got.indexOf('\n')
      if (nl < 0) return
      c.destroy()
      resolve(JSON.parse(got.slice(0, nl)) as Record<string, unknown>)
    })
    c.on('error', reject)
  })
}

/** SHA-256 of `length` bytes of the file at `offset`, read 8 MiB at a time (the objects go up to 1 GiB). */
export function sha256Of(path: string, offset: number, length: number): string {
  const fd = openSync(path, 'r')
  const hash = createHash('sha256')
  const buf = Buffer.alloc(8 * 2 ** 20)
  try {
    for (let at = 0; at < length; at += buf.length) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, length - at), offset + at)
      hash.update(buf.subarray(0, n))
    }
  } finally {
    closeSync(fd)
  }
  return hash.digest('hex')
}

/** What each open descriptor of `pid` points at, e.g. `socket:[123]`, `anon_inode:[userfaultfd]`. */
export function openFds(pid: number): string[] {
  const targets: string[] = []
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      targets.push(readlinkSync(`/proc/${pid}/fd/${fd}`))
    } catch {
      // Closed between the listing and the read.
    }
  }
  return targets
}

/**
 * Waits (up to `ms`) until `pid` holds no more descriptors than it did in `before`, and
 * fails naming the ones it kept. Closing a peer's worker and sockets finishes a little
 * after the peer leaves the status list, so one reading right away can count one too many.
 */
export async function expectFdsBackTo(pid: number, before: string[], ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  let now = openFds(pid)
  while (now.length > before.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100))
    now = openFds(pid)
  }
  const kept = [...now]
  for (const target of before) {
    const at = kept.indexOf(target)
    if (at >= 0) kept.splice(at, 1)
  }
  expect(now.length, `descriptors kept: ${kept.join(', ')}`).toBeLessThanOrEqual(before.length)
}
