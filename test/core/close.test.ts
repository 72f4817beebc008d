import { spawnSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { attachRegion, openRegion } from '@faultline/core'
import { native } from '@faultline/native'
import { sharedPattern } from '../helpers/dataset.js'

describe('close() safety', () => {
  it('detaches every view of the closing thread: old views read as empty', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: { type: 'memory', data: sharedPattern(1 << 20) } })
    const v = region.view(0, 4096)
    const f64 = new Float64Array(v.buffer, v.byteOffset, 16)
    expect(v[0]).toBeTypeOf('number')
    await region.close()
    expect(v.length).toBe(0)
    expect(v[0]).toBeUndefined()
    expect(f64.length).toBe(0)
    expect(v.buffer.byteLength).toBe(0)
    // writing to a detached view is a no-op, never a crash
    v[0] = 1
    expect(v[0]).toBeUndefined()
  })

  it('detaches views held by another thread through its handle', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: { type: 'memory', data: sharedPattern(1 << 20) } })
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads')
      import('@faultline/core').then(({ attachRegion }) => {
        const a = attachRegion(workerData)
        const v = a.view(0, 4096)
        parentPort.postMessage({ first: v[0] })
        parentPort.once('message', () => {
          // by now the region has closed and the close notice has arrived
          setTimeout(() => parentPort.postMessage({ length: v.length, closed: a.closed }), 50)
        })
      })
      `,
      { eval: true, workerData: region.handle() },
    )
    const first = await new Promise<{ first: number }>((resolve) => worker.once('message', resolve))
    expect(first.first).toBeTypeOf('number')
    await region.close()
    worker.postMessage('closed?')
    const after = await new Promise<{ length: number; closed: boolean }>((resolve) => worker.once('message', resolve))
    expect(after).toEqual({ length: 0, closed: true })
    await worker.terminate()
  })

  it('a handle used after its region closed gives ERR_REGION_CLOSED, not a crash', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: 'memory:' })
    const handle = region.handle()
    await region.close()
    const late = attachRegion(handle)
    expect(() => late.view(0, 4096)).toThrow(expect.objectContaining({ code: 'ERR_REGION_CLOSED' }))
    expect(late.closed).toBe(true)
  })

  it('keeps the address range reserved while a stale view exists: it reads zeros, then is unmapped', async () => {
    const region = await openRegion({ size: 1 << 20, pageSize: 4096, backend: { type: 'memory', data: sharedPattern(1 << 20) } })
    const address = region.handle().address
    // A thread that keeps its own buffer past close and ignores the close notice.
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads')
      import('@faultline/native').then(({ native }) => {
        const v = new Uint32Array(native.externalBuffer(workerData, 4096))
        parentPort.postMessage(v[1])
        parentPort.once('message', () => parentPort.postMessage(v.reduce((a, b) => a + b, 0)))
      })
      `,
      { eval: true, workerData: address },
    )
    const before = await new Promise<number>((resolve) => worker.once('message', resolve))
    expect(before).not.toBe(0)
    await region.close()
    expect(native.mappingRefs(address)).toBe(1)
    worker.postMessage('read again')
    const sum = await new Promise<number>((resolve) => worker.once('message', resolve))
    expect(sum).toBe(0)
    await worker.terminate()
    // the terminated thread's buffer is gone: the range is unmapped and forgotten
    expect(native.mappingRefs(address)).toBe(-1)
  })

  it('process.exit() with a region still open exits cleanly (its pager thread is torn down mid-loop)', () => {
    // It used to abort now and then: the watcher's poll callback ran while the
    // pager thread was being terminated, a N-API call failed, and building the
    // error for it failed too (napi_fatal_error).
    const script = `import { openRegion } from '@faultline/core'
      const r = await openRegion({ size: 1 << 20, backend: 'memory:' })
      console.log(r.view()[5])
      process.exit(0)`
    const codes = Array.from({ length: 8 }, () => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })
      return [r.status, r.signal, r.stdout.trim(), r.stderr.includes('FATAL') ? 'fatal' : '']
    })
    expect(codes).toEqual(Array.from({ length: 8 }, () => [0, null, '0', '']))
  })
})
