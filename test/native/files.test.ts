// seekData / seekHole on a sparse file.
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isNativeError, native } from '@faultline/native'

const MiB = 1024 * 1024
const KiB = 1024

describe('seekData / seekHole', () => {
  let dir: string
  let fd: number

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'faultline-native-'))
    fd = openSync(join(dir, 'sparse.bin'), 'w+')
    ftruncateSync(fd, MiB)
    writeSync(fd, new Uint8Array(4 * KiB).fill(1), 0, 4 * KiB, 512 * KiB)
  })

  afterAll(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })

  it('finds the data written at 512 KiB and the holes around it', () => {
    expect(native.seekData(fd, 0)).toBe(512 * KiB)
    expect(native.seekHole(fd, 0)).toBe(0)
    expect(native.seekData(fd, 512 * KiB)).toBe(512 * KiB)
    expect(native.seekHole(fd, 512 * KiB)).toBe(516 * KiB)
    expect(native.seekData(fd, 514 * KiB)).toBe(514 * KiB)
  })

  it('returns -1 (ENXIO) when no data follows or the offset is at EOF', () => {
    expect(native.seekData(fd, 516 * KiB)).toBe(-1)
    expect(native.seekData(fd, MiB)).toBe(-1)
    expect(native.seekHole(fd, MiB)).toBe(-1)
    expect(native.seekHole(fd, 2 * MiB)).toBe(-1)
    // the implicit hole at EOF
    expect(native.seekHole(fd, 600 * KiB)).toBe(600 * KiB)
  })

  it('other errors throw, naming the whence', () => {
    try {
      native.seekData(1_000_000, 0)
      expect.unreachable()
    } catch (err) {
      expect(isNativeError(err)).toBe(true)
      expect(err).toMatchObject({ code: 'EBADF', syscall: 'lseek(SEEK_DATA)' })
    }
    expect(() => native.seekHole(fd, -1)).toThrow(RangeError)
  })
})
