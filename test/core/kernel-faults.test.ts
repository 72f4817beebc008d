import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { openRegion } from '@faultline/core'
import { checkPattern } from '@faultline/core/pattern'
import { sharedPattern } from '../helpers/dataset.js'
import { tempDir } from '../helpers/tmp.js'

const dir = tempDir()
const size = 8 * 2 ** 20

describe('faults raised by the kernel on behalf of a thread', () => {
  it('fs.writeSync from a view of missing pages (copy_from_user on the main thread)', async () => {
    const region = await openRegion({ size, pageSize: 65536, backend: { type: 'memory', data: sharedPattern(size) } })
    try {
      const path = join(dir, 'sync-out.bin')
      const fd = openSync(path, 'w')
      try {
        expect(writeSync(fd, region.view(0, size))).toBe(size)
      } finally {
        closeSync(fd)
      }
      expect(checkPattern(readFileSync(path), 0)).toBe(-1)
      expect(region.stats().pagesFetched).toBe(size / 65536)
    } finally {
      await region.close()
    }
  })

  it('fs.promises.writeFile from a view (the fault happens on a libuv threadpool thread)', async () => {
    const region = await openRegion({ size, pageSize: 65536, backend: { type: 'memory', data: sharedPattern(size) } })
    try {
      const path = join(dir, 'async-out.bin')
      await writeFile(path, region.view(0, size))
      expect(checkPattern(readFileSync(path), 0)).toBe(-1)
    } finally {
      await region.close()
    }
  })

  it('crypto hashing and Buffer.compare over region memory (native code touching pages)', async () => {
    const region = await openRegion({ size, pageSize: 4096, backend: { type: 'memory', data: sharedPattern(size) } })
    try {
      const expected = sharedPattern(size)
      expect(Buffer.compare(Buffer.from(region.view(0, size).buffer, 0, size), Buffer.from(expected.buffer))).toBe(0)
    } finally {
      await region.close()
    }
  })
})
