// Child process of bench/remote.mjs: s3rver and a static HTTP server with
// Range support on loopback ports. In their own process because the bench's
// main thread sleeps in page faults that these servers must answer.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import S3rver from 's3rver'
import serveStatic from 'serve-static'

const s3Dir = mkdtempSync(join(tmpdir(), 'faultline-bench-s3-'))
const httpDir = mkdtempSync(join(tmpdir(), 'faultline-bench-http-'))
const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir, resetOnClose: true, configureBuckets: [{ name: 'bench' }] })
const s3Address = await s3.run()
const files = serveStatic(httpDir, { acceptRanges: true, cacheControl: false, index: false })
const http = createServer((req, res) =>
  files(req, res, (err) => {
    res.statusCode = err?.status ?? 404
    res.end()
  }),
)
// Longer than the clients' idle sockets live: with Node's 5 s, a client on a
// loaded machine can reuse a socket the server is closing. (A bench run died
// once with "other side closed" on a reused socket; this is the likely cause.)
http.keepAliveTimeout = 65_000
await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve))
process.send({ s3Endpoint: `http://127.0.0.1:${s3Address.port}`, httpBase: `http://127.0.0.1:${http.address().port}`, httpDir })
process.on('disconnect', async () => {
  http.closeAllConnections()
  http.close()
  await s3.close().catch(() => undefined)
  rmSync(s3Dir, { recursive: true, force: true })
  rmSync(httpDir, { recursive: true, force: true })
  process.exit(0)
})
