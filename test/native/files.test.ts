// seekData / seekHole on a sparse file.
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { constants, FEATURE_BITS, isNativeError, native, registerModeBits } from '@faultline/native'

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

// The pieces of a region shared between processes: a tmpfs file mapped
// MAP_SHARED, registered MISSING on a uffd, and pages dropped with PUNCH_HOLE.
describe('mapSharedFile / punchHole / flock', () => {
  const PAGE = 4096
  let dir: string
  let fd: number

  beforeAll(() => {
    dir = mkdtempSync('/dev/shm/faultline-native-')
    fd = openSync(join(dir, 'pages'), 'w+')
    ftruncateSync(fd, 16 * PAGE)
  })

  afterAll(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })

  it('maps a tmpfs file read-only, registers it MISSING (COPY, ZEROPAGE, WAKE), and a COPY lands in the file', () => {
    const address = native.mapSharedFile(fd, 16 * PAGE, false)
    const other = native.mapSharedFile(fd, 16 * PAGE, true)
    const uffd = native.uffdOpen(FEATURE_BITS.MISSING_SHMEM, 'fallback')
    try {
      const ioctls = native.uffdRegister(uffd.fd, address, 16 * PAGE, registerModeBits({ missing: true }))
      // WAKE, COPY, ZEROPAGE, MOVE, POISON: the same mask as on anonymous memory (MOVE itself needs private anonymous VMAs).
      expect(ioctls).toBe(0x13c)
      expect(native.uffdCopy(uffd.fd, address, new Uint8Array(PAGE).fill(7), 0, PAGE, 0)).toBe(PAGE)
      expect(native.uffdCopy(uffd.fd, address, new Uint8Array(PAGE).fill(8), 0, PAGE, 0)).toBe(-constants.EEXIST)
      expect(native.uffdZeropage(uffd.fd, address + PAGE, PAGE, 0)).toBe(PAGE)
      // Another mapping of the file (another process's, say) sees the page without any fault.
      const view = new Uint8Array(native.externalBuffer(other, 16 * PAGE))
      expect(view[10]).toBe(7)
      native.punchHole(fd, 0, PAGE)
      expect(view[10]).toBe(0)
      native.detachBuffer(view.buffer)
      native.uffdUnregister(uffd.fd, address, 16 * PAGE)
    } finally {
      native.closeFd(uffd.fd)
      native.retireMapping(address)
      native.retireMapping(other)
    }
  })

  it('validates arguments and names the syscall on failure', () => {
    expect(() => native.mapSharedFile(fd, 100, false)).toThrow(/multiple of the page size/)
    expect(() => native.mapSharedFile(fd, PAGE, 'yes' as unknown as boolean)).toThrow(TypeError)
    expect(() => native.punchHole(fd, 0, 0)).toThrow(RangeError)
    expect(() => native.punchHole(1_000_000, 0, PAGE)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fallocate(FALLOC_FL_PUNCH_HOLE)' }))
    expect(() => native.flock(1_000_000, true)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'flock(LOCK_EX)' }))
    native.flock(fd, true)
    native.flock(fd, false)
  })
})
