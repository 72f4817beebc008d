/**
 * Real redis-server processes for tests: one standalone server, or a cluster
 * of masters with replicas, built as `redis-cli --cluster create` would and
 * checked with `redis-cli --cluster check`. Used by the
 * globalSetup for the shared servers and by suites that must kill, restart or
 * reshard a server of their own without disturbing the shared ones.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis, type RedisOptions } from 'ioredis'

/** Ports handed out in this process (and their cluster bus ports), so two servers never pick the same one. */
const taken = new Set<number>()

// Should this process end without stop() (a failed run, an interrupt), take the servers along.
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const proc of running) proc.kill('SIGKILL')
})

const installed = new Set<string>()

/** Makes sure `redis-server` and `redis-cli` exist, installing Debian's package when we are root. */
export function ensureRedisInstalled(): void {
  ensureInstalled('redis-server', ['redis-server', 'redis-cli'])
}

/** Makes sure `programs` exist, installing Debian's `pkg` when they do not and we are root. */
export function ensureInstalled(pkg: string, programs: string[]): void {
  if (installed.has(pkg)) return
  if (programs.every(has)) {
    installed.add(pkg)
    return
  }
  if (process.getuid?.() !== 0) {
    throw new Error(`faultline tests: ${programs.join('/')} not installed and we are not root to install it; run \`sudo apt-get install -y ${pkg}\` (the Redis suites talk to real servers)`)
  }
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', pkg]]) {
    const r = spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    if (r.status !== 0) {
      throw new Error(`faultline tests: \`apt-get ${args.join(' ')}\` failed (exit ${r.status}); install ${pkg} by hand.\n${(r.stderr || r.stdout || String(r.error)).slice(-2000)}`)
    }
  }
  if (!programs.every(has)) throw new Error(`faultline tests: apt-get installed ${pkg} but ${programs.join('/')} still not on PATH`)
  installed.add(pkg)
}

function has(program: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$0"', program], { stdio: 'ignore' }).status === 0
}

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const address = s.address()
      s.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** A free loopback port; for a cluster node, port + 10000 (its cluster bus) must be free too. */
export async function freePort(clusterBus: boolean): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await ephemeralPort()
    if (taken.has(port) || (clusterBus && (port + 10000 > 65535 || taken.has(port + 10000) || !(await listenable(port + 10000))))) continue
    taken.add(port)
    if (clusterBus) taken.add(port + 10000)
    return port
  }
  throw new Error('faultline tests: no free loopback port found for redis-server')
}

export interface RedisServerOptions {
  /** Run as a cluster node. */
  cluster?: boolean
  /** Persist every write (appendonly, fsync always), so data survives a SIGKILL and restart. */
  persistent?: boolean
  /** Extra redis-server arguments. */
  args?: string[]
}

/** One redis-server process on a loopback port, with its own data directory. */
export class RedisServer {
  private proc: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly options: RedisServerOptions,
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    ensureRedisInstalled()
    const port = await freePort(options.cluster === true)
    const server = new RedisServer(port, mkdtempSync(join(tmpdir(), `faultline-redis-${port}-`)), options)
    await server.launch()
    return server
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  get url(): string {
    return `redis://${this.address}`
  }

  get pid(): number | undefined {
    return this.proc?.pid
  }

  /** (Re)starts the process on the same port and data directory, and waits until it answers. */
  async launch(): Promise<void> {
    const o = this.options
    const args = [
      '--port', String(this.port), '--bind', '127.0.0.1', '--protected-mode', 'no',
      '--dir', this.dir, '--save', '', '--loglevel', 'warning', '--logfile', '',
      // Big regions are written in bursts: never cut a replica off for falling behind.
      '--client-output-buffer-limit', 'replica 0 0 0', '--repl-diskless-sync-delay', '0',
      ...(o.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
      ...(o.cluster ? ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'] : []),
      ...(o.args ?? []),
    ]
    const log = openSync(join(this.dir, 'server.log'), 'a')
    const proc = spawn('redis-server', args, { stdio: ['ignore', log, log] })
    closeSync(log)
    this.proc = proc
    running.add(proc)
    this.exited = new Promise((resolve) =>
      proc.once('exit', () => {
        running.delete(proc)
        resolve()
      }),
    )
    const deadline = Date.now() + 10_000
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`faultline tests: redis-server on port ${this.port} exited at start:\n${this.log()}`)
      if (await this.ping()) return
      if (Date.now() > deadline) throw new Error(`faultline tests: redis-server on port ${this.port} did not answer within 10 s:\n${this.log()}`)
      await sleep(20)
    }
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'server.log'), 'utf8').slice(-3000)
    } catch {
      return '(no log)'
    }
  }

  private async ping(): Promise<boolean> {
    const c = this.client({ retryStrategy: () => null, connectTimeout: 500, lazyConnect: true })
    try {
      await c.connect()
      return (await c.ping()) === 'PONG'
    } catch {
      return false
    } finally {
      c.disconnect()
    }
  }

  /** A plain ioredis client to this server, for seeding and inspecting. */
  client(options: RedisOptions = {}): Redis {
    const c = new Redis({ host: '127.0.0.1', port: this.port, maxRetriesPerRequest: 1, ...options })
    c.on('error', () => undefined)
    return c
  }

  /** Kills the process (SIGKILL by default: a crash) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.proc?.kill(signal)
    await this.exited
  }

  /** Stops the process and removes its data directory. */
  async stop(): Promise<void> {
    if (this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM')
      const timer = setTimeout(() => this.proc?.kill('SIGKILL'), 3000)
      await this.exited
      clearTimeout(timer)
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A Redis Cluster of `masters` masters, each with `replicasPerMaster` replicas. */
export class RedisCluster {
  private constructor(readonly servers: RedisServer[]) {}

  static async start(masters = 3, replicasPerMaster = 1): Promise<RedisCluster> {
    ensureRedisInstalled()
    const started = await Promise.allSettled(Array.from({ length: masters * (1 + replicasPerMaster) }, () => RedisServer.start({ cluster: true })))
    const servers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
    const cluster = new RedisCluster(servers)
    try {
      const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      await cluster.join(masters, replicasPerMaster)
      await cluster.waitHealthy(masters, replicasPerMaster)
      const check = await run('redis-cli', ['--cluster', 'check', servers[0]!.address])
      if (check.code !== 0) throw new Error(`faultline tests: redis-cli --cluster check failed on the new cluster:\n${check.output.slice(-3000)}`)
      return cluster
    } catch (err) {
      await cluster.stop()
      throw err
    }
  }

  /**
   * What `redis-cli --cluster create --cluster-replicas N` does, without its
   * fixed one-second sleeps (it takes ~3 s; this ~0.3 s, and then Redis's
   * own 2 s writable delay for new masters is the floor): slots split evenly
   * over the masters, distinct config epochs, MEET, then each replica
   * REPLICATEs its master once it knows it. `redis-cli --cluster check`
   * then confirms the result.
   */
  private async join(masters: number, replicasPerMaster: number): Promise<void> {
    const clients = this.servers.map((s) => s.client({ retryStrategy: () => null }))
    try {
      const ids = (await Promise.all(clients.map((c) => c.call('CLUSTER', 'MYID')))) as string[]
      await Promise.all(
        clients.map(async (c, i) => {
          if (i < masters) {
            const first = Math.floor((i * 16384) / masters)
            const last = Math.floor(((i + 1) * 16384) / masters) - 1
            await c.call('CLUSTER', 'ADDSLOTSRANGE', String(first), String(last))
          }
          await c.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1))
        }),
      )
      // Every node meets every other: waiting for gossip to spread one MEET takes seconds.
      await Promise.all(clients.flatMap((c, i) => this.servers.slice(i + 1).map((s) => c.call('CLUSTER', 'MEET', '127.0.0.1', String(s.port)))))
      await until(async () => {
        const known = await Promise.all(clients.map(async (c) => ((await c.call('CLUSTER', 'NODES')) as string).trim().split('\n').filter((l) => !/handshake|noaddr/.test(l)).length))
        return known.every((n) => n === this.servers.length)
      }, 'every node to know every other')
      await Promise.all(clients.slice(masters).map((c, r) => c.call('CLUSTER', 'REPLICATE', ids[r % masters]!)))
      await until(async () => {
        const links = await Promise.all(clients.slice(masters).map(async (c) => /master_link_status:up/.test((await c.info('replication')) as string)))
        return links.every(Boolean)
      }, 'every replica to sync with its master')
    } finally {
      for (const c of clients) c.disconnect()
    }
  }

  /**
   * Sets cluster-node-timeout on every node: how long a node may not answer
   * before the others fail it over. Nodes start with 2000 ms, which makes
   * the cluster form quickly (gossip pings follow the timeout).
   */
  async setNodeTimeout(ms: number): Promise<void> {
    await Promise.all(
      this.servers.map(async (s) => {
        const c = s.client()
        try {
          await c.config('SET', 'cluster-node-timeout', String(ms))
        } finally {
          c.disconnect()
        }
      }),
    )
  }

  /** Seed addresses for clients: every node, `127.0.0.1:port`. */
  get nodes(): string[] {
    return this.servers.map((s) => s.address)
  }

  server(address: string): RedisServer {
    const s = this.servers.find((x) => x.address === address)
    if (s === undefined) throw new Error(`no cluster node ${address}`)
    return s
  }

  /** Waits until every node says cluster_state:ok, sees every master with its replicas, and all agree on the configuration. */
  async waitHealthy(masters: number, replicasPerMaster: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = ''
    for (;;) {
      const views = await Promise.all(this.servers.map((s) => this.nodeView(s)))
      const ok = views.every((v) => v.ok && v.masters === masters && v.replicas === masters * replicasPerMaster && v.config === views[0]!.config)
      if (ok) return
      last = JSON.stringify(views)
      if (Date.now() > deadline) throw new Error(`faultline tests: the Redis cluster did not become healthy within ${timeoutMs} ms: ${last}`)
      await sleep(50)
    }
  }

  private async nodeView(s: RedisServer): Promise<{ ok: boolean; masters: number; replicas: number; config: string }> {
    const c = s.client({ retryStrategy: () => null })
    try {
      const info = (await c.call('CLUSTER', 'INFO')) as string
      const nodes = ((await c.call('CLUSTER', 'NODES')) as string).trim().split('\n')
      const live = nodes.filter((l) => !/fail|handshake|noaddr/.test(l.split(' ')[2] ?? ''))
      return {
        ok: /cluster_state:ok/.test(info),
        masters: live.filter((l) => /master/.test(l.split(' ')[2] ?? '') && (l.split(' ').length > 8)).length,
        replicas: live.filter((l) => /slave/.test(l.split(' ')[2] ?? '')).length,
        // What every node must agree on: who is master of which slots, who replicates whom.
        config: nodes.map((l) => l.split(' ')).map((f) => [f[0], /master/.test(f[2] ?? '') ? 'M' : 'S', f[3], ...f.slice(8)].join(' ')).sort().join('\n'),
      }
    } catch {
      return { ok: false, masters: 0, replicas: 0, config: '' }
    } finally {
      c.disconnect()
    }
  }

  /** Current masters (address and node id), from CLUSTER NODES of a live node. */
  async masters(): Promise<Array<{ address: string; id: string }>> {
    for (const s of this.servers) {
      const c = s.client({ retryStrategy: () => null })
      try {
        const nodes = ((await c.call('CLUSTER', 'NODES')) as string).trim().split('\n')
        return nodes
          .map((l) => l.split(' '))
          .filter((f) => /master/.test(f[2] ?? '') && !/fail/.test(f[2] ?? '') && f.length > 8)
          .map((f) => ({ id: f[0]!, address: f[1]!.split('@')[0]! }))
      } catch {
        // that node is down: ask the next
      } finally {
        c.disconnect()
      }
    }
    throw new Error('faultline tests: no cluster node answers')
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop().catch(() => undefined)))
  }
}

/** Runs a program to completion, collecting its output. */
export function run(program: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    p.stdout.on('data', (d: Buffer) => (output += d.toString()))
    p.stderr.on('data', (d: Buffer) => (output += d.toString()))
    p.once('error', reject)
    p.once('close', (code) => resolve({ code, output }))
  })
}

async function until(done: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`faultline tests: timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
