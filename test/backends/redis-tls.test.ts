/**
 * TLS passed through to ioredis: `rediss://` with a CA, on a server of this
 * suite's own with a self-signed certificate for localhost.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { RedisServer, ensureInstalled, freePort } from '../helpers/redis-server.js'
import { tempDir } from '../helpers/tmp.js'
import { uniqueNamespace } from '../helpers/redis.js'

const dir = tempDir()
let server: RedisServer
let tlsPort: number
let ca: string

beforeAll(async () => {
  ensureInstalled('openssl', ['openssl'])
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')]
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`openssl could not make a test certificate: ${r.stderr}`)
  ca = readFileSync(cert, 'utf8')
  tlsPort = await freePort(false)
  // The plain port stays open for the helper's readiness check; the backend uses the TLS one.
  server = await RedisServer.start({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', cert, '--tls-auth-clients', 'no'] })
})
afterAll(async () => server?.stop())

it('connects over TLS with the given CA, checking the certificate against the host name', async () => {
  const url = `rediss://localhost:${tlsPort}/${uniqueNamespace('tls')}`
  const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: { type: 'redis', url, tls: { ca } } })
  expect(region.backendName).toBe(url)
  region.view(4096 * 3, 1)[0] = 77
  await region.close()
  const again = await openRegion({ pageSize: 4096, backend: { type: 'redis', url, tls: { ca } }, access: 'read-only' })
  try {
    expect(again.view(4096 * 3, 1)[0]).toBe(77)
  } finally {
    await again.close()
  }
  // Without the CA the self-signed certificate is refused: verification is on.
  await expect(openRegion({ size: 1 << 20, backend: url })).rejects.toMatchObject({ code: 'ERR_BACKEND', message: expect.stringMatching(/cannot connect to rediss:\/\/localhost:\d+\/.*: .*(self.signed|certificate)/i) })
})
