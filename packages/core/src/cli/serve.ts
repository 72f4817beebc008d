/**
 * `faultline serve`: run the handler until SIGTERM/SIGINT; SIGUSR1 writes
 * back every write-back peer. `--status` asks a running server instead.
 */
import { connect } from 'node:net'
import { parseFlags } from './flags.js'
import { serve } from '../serve/server.js'
import type { ServerStatus } from '../serve/server.js'

export const SERVE_USAGE = `       faultline serve --socket PATH --backend URL [--page-size 64K] [--readahead 32M]
                       [--fetch-timeout-ms N]
                            serve other processes' memory (Firecracker's UFFD protocol; see clients/README.md)
       faultline serve --status --socket PATH [--json]
                            list a running server's peers, faults, bytes and latency`

interface ServeArgs {
  socket: string | undefined
  backend: string | undefined
  pageSize: number | undefined
  readahead: number | undefined
  fetchTimeoutMs: number | undefined
  status: boolean
  json: boolean
}

export function parseServeArgs(args: string[], fail: (message: string) => never): ServeArgs {
  const defaults: ServeArgs = { socket: undefined, backend: undefined, pageSize: undefined, readahead: undefined, fetchTimeoutMs: undefined, status: false, json: false }
  const a = parseFlags(args, defaults, {
    '--socket': ['socket', 'string'],
    '--backend': ['backend', 'string'],
    '--page-size': ['pageSize', 'size'],
    '--readahead': ['readahead', 'size'],
    '--fetch-timeout-ms': ['fetchTimeoutMs', 'count'],
    '--status': ['status', 'switch'],
    '--json': ['json', 'switch'],
  }, fail)
  if (a.socket === undefined) fail('serve needs --socket PATH')
  if (!a.status && a.backend === undefined) fail('serve needs --backend URL (e.g. file:///path/to/memory.img or redis://127.0.0.1:6379/ns)')
  return a
}

/** Serves until a signal; resolves with the exit code. */
export async function runServe(a: ServeArgs, out: (line: string) => void): Promise<number> {
  const server = await serve({
    socket: a.socket!,
    backend: a.backend!,
    ...(a.pageSize === undefined ? {} : { pageSize: a.pageSize }),
    ...(a.readahead === undefined ? {} : { readahead: { maxBytes: a.readahead } }),
    ...(a.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: a.fetchTimeoutMs }),
    log: out,
  })
  out(`faultline serve: listening on ${server.socket}`)
  return new Promise((resolve) => {
    const stop = (signal: string): void => {
      out(`faultline serve: ${signal}: writing back and closing`)
      server.close().then(() => resolve(0), (err: unknown) => {
        out(`faultline serve: closing failed: ${(err as Error).message}`)
        resolve(1)
      })
    }
    // Closing a live peer's descriptor would make the pages it has not got
    // yet read as zeros: wait for the peers to leave, unless asked twice.
    let waiting: NodeJS.Timeout | undefined
    const onSignal = (signal: string): void => {
      const live = server.livePeers()
      if (live === 0 || waiting !== undefined) {
        clearInterval(waiting)
        stop(signal)
        return
      }
      out(`faultline serve: ${signal}: ${live} peer(s) still running would read zeros for pages not served yet; waiting for them to exit (send ${signal} again to stop now)`)
      waiting = setInterval(() => {
        if (server.livePeers() > 0) return
        clearInterval(waiting)
        stop(signal)
      }, 500)
    }
    process.on('SIGTERM', () => onSignal('SIGTERM'))
    process.on('SIGINT', () => onSignal('SIGINT'))
    process.on('SIGUSR1', () => {
      server.flush().then(() => out('faultline serve: SIGUSR1: every write-back peer flushed'), (err: unknown) => out(`faultline serve: SIGUSR1: flush failed: ${(err as Error).message}`))
    })
  })
}

/** Asks the server at `socket` for its status. */
export function fetchStatus(socket: string): Promise<ServerStatus> {
  return new Promise((resolve, reject) => {
    const c = connect(socket)
    let text = ''
    c.setEncoding('utf8')
    c.on('connect', () => c.write('{"command":"status"}'))
    c.on('data', (chunk: string) => {
      text += chunk
    })
    c.on('error', (err) => reject(new Error(`cannot reach a faultline server at ${socket}: ${err.message}`)))
    c.on('end', () => {
      try {
        resolve(JSON.parse(text) as ServerStatus)
      } catch {
        reject(new Error(`the server at ${socket} answered something that is not a status: ${text.slice(0, 200)}`))
      }
    })
  })
}

export function formatStatus(s: ServerStatus): string {
  const lines = [`faultline serve on ${s.socket}, backend ${s.backend}, up ${(s.uptimeMs / 1000).toFixed(0)} s; ${s.attached} attached, ${s.refused} refused, ${s.peers.length} serving`]
  if (s.peers.length > 0) lines.push('  peer    pid  range                    faults   fetched   p50 µs   p99 µs  dirty  written')
  for (const p of s.peers) {
    const st = p.stats
    const range = `${p.address}+${mib(p.size)}`
    lines.push(
      `  ${String(p.id).padStart(4)} ${String(p.pid).padStart(6)}  ${range.padEnd(22)} ${String(st.faults).padStart(8)} ${mib(st.bytesFetched).padStart(9)} ${String(Math.round(st.faultLatencyUs.p50)).padStart(8)} ${String(Math.round(st.faultLatencyUs.p99)).padStart(8)} ${String(st.dirtyPages).padStart(6)} ${String(st.pagesWritten).padStart(8)}${p.state === 'gone' ? '  (exited)' : ''}`,
    )
  }
  return lines.join('\n')
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0)}M`
}
