// A process flushing a file-backed region is SIGKILLed at random moments;
// after each kill the file, opened again through a region (recovery may
// happen at open), must hold every page whole, as a version no older than
// the last flush that resolved and no newer than the one in flight, and
// every page of the same flush. The loop is test/helpers/crash.ts (the
// Redis and S3 page stores run it in test/backends/remote-crash.test.ts).
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'vitest'
import { crashLoop, crashTimeoutMs } from '../helpers/crash.js'
import { tempDir } from '../helpers/tmp.js'

// tmpfs, where the kernel copies a write 4 KiB page by page and a SIGKILL
// cuts it at any of them. ext4 on this kernel (6.18, large folios) copied
// each 64 KiB write as one folio: 0 torn pages in 30 kills there, against
// 8 in 30 on tmpfs. Older kernels and other file systems cut like tmpfs.
const dir = tempDir(existsSync('/dev/shm') ? '/dev/shm' : undefined)

describe('file backend: flushes interrupted by SIGKILL', () => {
  it.each([
    ['sync: true', {}],
    ['sync: false', { sync: false }],
  ] as const)('never leaves a torn page, nor one older than the last resolved flush, nor two flushes mixed (%s)', async (label, options) => {
    const path = join(dir, `crash-${label.replace(/\W+/g, '-')}.bin`)
    await crashLoop({
      label: `file ${label}`,
      backend: { type: 'file', path, ...options },
      pageSize: 64 * 1024,
      pages: 512,
      prepare: async (initial) => writeFileSync(path, initial),
      wholeFlushes: true,
      viaViews: true,
    })
  }, crashTimeoutMs)
})
