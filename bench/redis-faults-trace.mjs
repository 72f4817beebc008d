// Adds timestamps to the *built* pager and Redis page reader (dist/, not the
// sources) for `FT_TRACE=/tmp/ftt node bench/redis-faults.mjs`, which then
// breaks each fault's time down. `pnpm build` takes them out again.
//   node bench/redis-faults-trace.mjs
// Each point pushes (code, µs from process.hrtime) into a per-thread list
// written to $FT_TRACE-<threadId>.json when the pager thread exits.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const T = 'globalThis.__ftT?.('
const head = `if (process.env.FT_TRACE && !globalThis.__ftT) { const ev = []; globalThis.__ftT = (c) => { ev.push(c, Number(process.hrtime.bigint()) / 1e3) }; process.on('exit', () => { process.getBuiltinModule('fs').writeFileSync(process.env.FT_TRACE + '-' + process.getBuiltinModule('worker_threads').threadId + '.json', JSON.stringify(ev)) }) }\n`

function patch(file, subs, prefix = '') {
  const path = root + file
  let s = readFileSync(path, 'utf8')
  if (s.includes('__ftT')) return
  for (const [a, b] of subs) {
    if (!s.includes(a)) throw new Error(`${file}: no ${a} (the sources changed: update this script)`)
    s = s.replace(a, b)
  }
  writeFileSync(path, prefix + s)
}

patch('packages/core/dist/pager/pager.js', [
  ['onMessages(count, messages) {', `onMessages(count, messages) { ${T}2);`],
  ['        this.drain();\n        // A held page', `        ${T}12); this.drain();\n        // A held page`],
  ['async runBatchAsync(pages) {', `async runBatchAsync(pages) { ${T}13);`],
  ['async fetchWithRetry(pages) {', `async fetchWithRetry(pages) { ${T}14);`],
  ['const read = await this.fetcher.readWithRetry(plan.toRead, {', `${T}3); const read = await this.fetcher.readWithRetry(plan.toRead, {`],
  ['const data = await this.fetchWithRetry(pages);', `const data = await this.fetchWithRetry(pages); ${T}8);`],
  ['this.fill(this.pageAddress(page), data, (this.writeBack?.installMode(forWrite) ?? 0) | dontWake);', `${T}9); this.fill(this.pageAddress(page), data, (this.writeBack?.installMode(forWrite) ?? 0) | dontWake); ${T}10);`],
], head)
patch('packages/core/dist/pager/fetcher.js', [
  ['return this.check(pages, await settleWithin(this.backend.read(pages), remaining, this.backend.info.name));', `const read = await settleWithin(this.backend.read(pages), remaining, this.backend.info.name); ${T}7); return this.check(pages, read);`],
])
patch('packages/backends/dist/redis/page-reader.js', [
  ['next.resolve(reply);', `{ ${T}6); next.resolve(reply); }`],
  ['this.socket.write(encode(args));', `${T}4); this.socket.write(encode(args)); ${T}5);`],
  ['this.parser.feed(buffer, bytes);', `${T}11); this.parser.feed(buffer, bytes);`],
])
