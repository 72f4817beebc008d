// The uffd wrappers with real syscalls, single-threaded: nothing here touches
// registered memory that is missing, so no thread ever sleeps in a fault.
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import {
  constants,
  FEATURE_BITS,
  featureNames,
  isNativeError,
  native,
  registerModeBits,
  systemPageSize,
  type NativeError,
} from '@faultline/native'
import { PAGE, pattern, region } from './helpers.js'

const MISSING = constants.UFFDIO_REGISTER_MODE_MISSING
const WP = constants.UFFDIO_REGISTER_MODE_WP

/** Runs fn, expects a FaultlineNativeError, returns it. */
function nativeError(fn: () => unknown): NativeError {
  try {
    fn()
  } catch (err) {
    expect(isNativeError(err)).toBe(true)
    expect((err as Error).name).toBe('FaultlineNativeError')
    return err as NativeError
  }
  throw new Error('expected a FaultlineNativeError, nothing was thrown')
}

describe('constants', () => {
  it('the TypeScript constants match the values the addon was compiled with', () => {
    const c = native.constants
    expect(c.SYSTEM_PAGE_SIZE).toBeGreaterThanOrEqual(4096)
    expect(systemPageSize).toBe(c.SYSTEM_PAGE_SIZE)
    for (const [name, value] of Object.entries(constants)) {
      expect({ name, value: c[name] }).toEqual({ name, value })
    }
    for (const [name, bit] of Object.entries(FEATURE_BITS)) {
      expect({ name, value: c[`UFFD_FEATURE_${name}`] }).toEqual({ name, value: bit })
    }
    expect(Object.isFrozen(c)).toBe(true)
  })

  it('request codes match the uapi values in the notes', () => {
    const c = native.constants
    expect(c.UFFDIO_API).toBe(0xc018aa3f)
    expect(c.UFFDIO_REGISTER).toBe(0xc020aa00)
    expect(c.UFFDIO_COPY).toBe(0xc028aa03)
    expect(c.UFFDIO_MOVE).toBe(0xc028aa05)
    expect(c.UFFDIO_POISON).toBe(0xc020aa08)
    expect(c.USERFAULTFD_IOC_NEW).toBe(0xaa00)
  })
})

describe('probe and handshake', () => {
  it('probe reports every feature, including WP_ASYNC, MOVE and POISON', () => {
    const p = native.probe()
    expect(p.via).toBe('syscall')
    expect(p.userModeOnly).toBe(process.getuid?.() !== 0)
    expect(p.names).toEqual(featureNames(p.features))
    for (const name of ['WP_ASYNC', 'MOVE', 'POISON', 'WP_UNPOPULATED', 'EVENT_REMOVE', 'THREAD_ID']) {
      expect(p.names).toContain(name)
    }
    // REGISTER | UNREGISTER; bit 63 (_UFFDIO_API) cannot be a double and is dropped
    expect(p.ioctls).toBe(0x3)
  })

  it('uffdOpen returns every supported feature, not only the requested ones', () => {
    const want = FEATURE_BITS.THREAD_ID | FEATURE_BITS.EVENT_REMOVE
    const u = native.uffdOpen(want, 'fallback')
    try {
      const p = native.probe()
      expect(u.fd).toBeGreaterThan(2)
      expect(u.via).toBe(p.via)
      expect(u.userModeOnly).toBe(p.userModeOnly)
      expect(u.features).toBe(p.features)
      expect(u.ioctls).toBe(0x3)
    } finally {
      native.closeFd(u.fd)
    }
  })

  it.runIf(process.getuid?.() === 0)('userModeOnly: true and fallback (as root)', () => {
    const user = native.uffdOpen(0, true)
    expect(user.userModeOnly).toBe(true)
    native.closeFd(user.fd)
    const fallback = native.uffdOpen(0, 'fallback')
    expect(fallback.userModeOnly).toBe(false) // root: the full mode is allowed
    native.closeFd(fallback.fd)
  })

  it.runIf(process.getuid?.() === 0)('unprivileged (uid 65534): fallback to UFFD_USER_MODE_ONLY', () => {
    // vm.unprivileged_userfaultfd=0 and /dev/userfaultfd is root-only here
    const copy = readableCopyOfNative()
    const entry = join(copy, 'dist', 'index.js')
    const script = `
      import(${JSON.stringify(entry)}).then(({ native }) => {
        const out = { probe: native.probe() };
        try { native.uffdOpen(0, false) } catch (e) { out.full = { code: e.code, syscall: e.syscall } }
        const u = native.uffdOpen(0, 'fallback'); native.closeFd(u.fd); out.fallback = u;
        try { native.uffdOpen(${FEATURE_BITS.EVENT_FORK}, true) } catch (e) { out.fork = { code: e.code, syscall: e.syscall } }
        console.log(JSON.stringify(out));
      });`
    const child = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 })
    rmSync(copy, { recursive: true, force: true })
    expect(child.stderr).toBe('')
    const out = JSON.parse(child.stdout)
    expect(out.probe.userModeOnly).toBe(true)
    expect(out.full).toEqual({ code: 'EPERM', syscall: 'userfaultfd' })
    expect(out.fallback).toMatchObject({ userModeOnly: true, via: 'syscall' })
    // EVENT_FORK needs CAP_SYS_PTRACE
    expect(out.fork).toEqual({ code: 'EPERM', syscall: 'ioctl(UFFDIO_API)' })
  })

  it('an unknown feature bit fails the handshake with EINVAL', () => {
    const err = nativeError(() => native.uffdOpen(2 ** 40, false))
    expect(err.code).toBe('EINVAL')
    expect(err.errno).toBe(22)
    expect(err.syscall).toBe('ioctl(UFFDIO_API)')
    expect(err.message).toBe('ioctl(UFFDIO_API) failed: EINVAL (Invalid argument)')
  })

  it('rejects bad arguments with TypeError/RangeError naming them', () => {
    expect(() => native.uffdOpen(-1, false)).toThrow(RangeError)
    expect(() => native.uffdOpen(1.5, false)).toThrow(/features must be an integer/)
    expect(() => native.uffdOpen(0, 'yes' as never)).toThrow(TypeError)
    expect(() => native.uffdRegister('3' as never, 0, PAGE, MISSING)).toThrow(/fd must be a number/)
  })
})

/**
 * The addon's package copied to a directory anyone may read: uid 65534 cannot
 * load it from a checkout under a private directory (mktemp -d, /root).
 * Returns the copy's directory.
 */
function readableCopyOfNative(): string {
  const pkg = dirname(dirname(createRequire(import.meta.url).resolve('@faultline/native')))
  const copy = mkdtempSync(join(tmpdir(), 'faultline-native-'))
  chmodSync(copy, 0o755)
  // node-gyp-build finds the addon for dist/; under pnpm it is a symlink.
  for (const part of ['package.json', 'dist', join('build', 'Release', 'faultline.node'), join('node_modules', 'node-gyp-build')]) {
    cpSync(join(pkg, part), join(copy, part), { recursive: true, dereference: true })
  }
  return copy
}

describe('register', () => {
  it('returns the ioctls mask: 0x13c for MISSING, 0x17c for MISSING|WP', () => {
    const { fd } = native.uffdOpen(FEATURE_BITS.PAGEFAULT_FLAG_WP, false)
    const a = native.mapAnonymous(2 * PAGE)
    const b = native.mapAnonymous(2 * PAGE)
    try {
      expect(native.uffdRegister(fd, a, 2 * PAGE, registerModeBits({ missing: true }))).toBe(0x13c)
      expect(native.uffdRegister(fd, b, 2 * PAGE, MISSING | WP)).toBe(0x17c)
      native.uffdUnregister(fd, a, 2 * PAGE)
      native.uffdUnregister(fd, b, 2 * PAGE)
    } finally {
      native.closeFd(fd)
      native.retireMapping(a)
      native.retireMapping(b)
    }
  })

  it('an unmapped range fails with the syscall named', () => {
    const { fd } = native.uffdOpen(0, false)
    const gone = native.mapAnonymous(PAGE)
    native.retireMapping(gone) // no buffers: unmapped at once
    expect(native.mappingRefs(gone)).toBe(-1)
    try {
      const err = nativeError(() => native.uffdRegister(fd, gone, PAGE, MISSING))
      expect(['EINVAL', 'ENOMEM']).toContain(err.code)
      expect(err.syscall).toBe('ioctl(UFFDIO_REGISTER)')
    } finally {
      native.closeFd(fd)
    }
  })

  it('validates alignment before the ioctl', () => {
    expect(() => native.uffdRegister(0, PAGE + 1, PAGE, MISSING)).toThrow(RangeError)
    expect(() => native.uffdRegister(0, PAGE, PAGE + 1, MISSING)).toThrow(/length must be a non-zero multiple/)
    expect(() => native.uffdRegister(0, PAGE, 0, MISSING)).toThrow(RangeError)
  })

  it('a bad fd is EBADF', () => {
    const err = nativeError(() => native.uffdWake(1_000_000, PAGE, PAGE))
    expect(err.code).toBe('EBADF')
    expect(err.syscall).toBe('ioctl(UFFDIO_WAKE)')
  })
})

describe('fill ioctls (no faulting thread)', () => {
  it('copy fills a page; copying onto it again returns -EEXIST', () => {
    const r = region(2, MISSING)
    try {
      const src = pattern(2, 3)
      expect(native.uffdCopy(r.fd, r.base, src, 0, PAGE, 0)).toBe(PAGE)
      expect(native.uffdCopy(r.fd, r.base, src, 0, PAGE, 0)).toBe(-17)
      expect(native.uffdCopy(r.fd, r.base, src, 0, 2 * PAGE, 0)).toBe(-constants.EEXIST)
      // populated: the view can be read without faulting
      const view = new Uint8Array(native.externalBuffer(r.base, PAGE))
      expect(view).toEqual(src.subarray(0, PAGE))
      native.detachBuffer(view.buffer)
    } finally {
      r.dispose()
    }
  })

  it('a 4-page copy whose 3rd page exists returns the partial byte count', () => {
    const r = region(4, MISSING)
    try {
      const src = pattern(4, 9)
      expect(native.uffdCopy(r.fd, r.base + 2 * PAGE, src, 2 * PAGE, PAGE, 0)).toBe(PAGE)
      expect(native.uffdCopy(r.fd, r.base, src, 0, 4 * PAGE, 0)).toBe(2 * PAGE)
      // resume after the existing page
      expect(native.uffdCopy(r.fd, r.base + 3 * PAGE, src, 3 * PAGE, PAGE, 0)).toBe(PAGE)
      const view = new Uint8Array(native.externalBuffer(r.base, 4 * PAGE))
      expect(view).toEqual(src)
      native.detachBuffer(view.buffer)
    } finally {
      r.dispose()
    }
  })

  it('copy validates dst, length and the source range', () => {
    const r = region(1, MISSING)
    try {
      const src = new Uint8Array(PAGE)
      expect(() => native.uffdCopy(r.fd, r.base + 8, src, 0, PAGE, 0)).toThrow(/dst must be page-aligned/)
      expect(() => native.uffdCopy(r.fd, r.base, src, 0, 100, 0)).toThrow(/length/)
      expect(() => native.uffdCopy(r.fd, r.base, src, 1, PAGE, 0)).toThrow(/exceeds src.byteLength/)
      expect(() => native.uffdCopy(r.fd, r.base, src.subarray(1), 0, PAGE, 0)).toThrow(RangeError)
      expect(() => native.uffdCopy(r.fd, r.base, [1, 2] as never, 0, PAGE, 0)).toThrow(TypeError)
      // outside any registered range
      const elsewhere = native.mapAnonymous(PAGE)
      try {
        const err = nativeError(() => native.uffdCopy(r.fd, elsewhere, src, 0, PAGE, 0))
        expect(err.code).toBe('ENOENT')
        expect(err.syscall).toBe('ioctl(UFFDIO_COPY)')
        expect(err.message).toBe('ioctl(UFFDIO_COPY) failed: ENOENT (No such file or directory)')
      } finally {
        native.retireMapping(elsewhere)
      }
      // COPY_MODE_WP without a WP registration
      const err = nativeError(() => native.uffdCopy(r.fd, r.base, src, 0, PAGE, constants.UFFDIO_COPY_MODE_WP))
      expect(err.code).toBe('EINVAL')
    } finally {
      r.dispose()
    }
  })

  it('copy uses the byte offset of a subarray source', () => {
    const r = region(1, MISSING)
    try {
      const backing = pattern(3, 4)
      const src = backing.subarray(PAGE) // byteOffset = PAGE
      expect(native.uffdCopy(r.fd, r.base, src, PAGE, PAGE, 0)).toBe(PAGE)
      const view = new Uint8Array(native.externalBuffer(r.base, PAGE))
      expect(view).toEqual(backing.subarray(2 * PAGE, 3 * PAGE))
      native.detachBuffer(view.buffer)
    } finally {
      r.dispose()
    }
  })

  it('zeropage fills zeros, then EEXIST; wake with no waiters is fine', () => {
    const r = region(2, MISSING)
    try {
      expect(native.uffdZeropage(r.fd, r.base, 2 * PAGE, 0)).toBe(2 * PAGE)
      expect(native.uffdZeropage(r.fd, r.base, PAGE, 0)).toBe(-17)
      expect(native.uffdCopy(r.fd, r.base + PAGE, pattern(1), 0, PAGE, 0)).toBe(-17)
      native.uffdWake(r.fd, r.base, 2 * PAGE)
      const view = new Uint8Array(native.externalBuffer(r.base, 2 * PAGE))
      expect(view.every((b) => b === 0)).toBe(true)
      native.detachBuffer(view.buffer)
    } finally {
      r.dispose()
    }
  })

  it('poison returns the byte count, then EEXIST (the page is never touched: SIGBUS)', () => {
    const r = region(2, MISSING, FEATURE_BITS.POISON)
    try {
      expect(native.uffdPoison(r.fd, r.base, PAGE, 0)).toBe(PAGE)
      expect(native.uffdPoison(r.fd, r.base, PAGE, 0)).toBe(-17)
      // Observed on 6.18: COPY treats the poison marker like an empty PTE
      // (pte_none_mostly) and replaces it, which un-poisons the page.
      expect(native.uffdCopy(r.fd, r.base, pattern(1), 0, PAGE, 0)).toBe(PAGE)
      expect(native.uffdPoison(r.fd, r.base, PAGE, 0)).toBe(-17)
      // the next page is unaffected
      expect(native.uffdCopy(r.fd, r.base + PAGE, pattern(1), 0, PAGE, 0)).toBe(PAGE)
    } finally {
      r.dispose()
    }
  })

  it('writeProtect arms and disarms a populated range', () => {
    const r = region(1, MISSING | WP, FEATURE_BITS.PAGEFAULT_FLAG_WP)
    try {
      expect(native.uffdCopy(r.fd, r.base, pattern(1), 0, PAGE, 0)).toBe(PAGE)
      native.uffdWriteProtect(r.fd, r.base, PAGE, constants.UFFDIO_WRITEPROTECT_MODE_WP)
      native.uffdWriteProtect(r.fd, r.base, PAGE, 0)
      // WP|DONTWAKE is refused by the kernel
      const err = nativeError(() =>
        native.uffdWriteProtect(
          r.fd,
          r.base,
          PAGE,
          constants.UFFDIO_WRITEPROTECT_MODE_WP | constants.UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
        ),
      )
      expect(err.code).toBe('EINVAL')
      expect(err.syscall).toBe('ioctl(UFFDIO_WRITEPROTECT)')
    } finally {
      r.dispose()
    }
  })
})

describe('uffdRead', () => {
  it('returns 0 when nothing is queued', () => {
    const r = region(1, MISSING)
    try {
      expect(native.uffdRead(r.fd, new Float64Array(4))).toBe(0)
      expect(native.uffdRead(r.fd, new Float64Array(64))).toBe(0)
    } finally {
      r.dispose()
    }
  })

  it('rejects an out array shorter than one message, or of the wrong type', () => {
    const r = region(1, MISSING)
    try {
      expect(() => native.uffdRead(r.fd, new Float64Array(3))).toThrow(RangeError)
      expect(() => native.uffdRead(r.fd, new Float64Array(0))).toThrow(/at least one message/)
      expect(() => native.uffdRead(r.fd, new Float32Array(8) as never)).toThrow(TypeError)
    } finally {
      r.dispose()
    }
  })

  it('a read error throws with syscall read', () => {
    const err = nativeError(() => native.uffdRead(1_000_000, new Float64Array(4)))
    expect(err.code).toBe('EBADF')
    expect(err.syscall).toBe('read')
  })
})

describe('closeFd', () => {
  it('closes; a bad fd is EBADF', () => {
    const { fd } = native.uffdOpen(0, false)
    native.closeFd(fd)
    // (not a second close of `fd`: another thread may already own that number)
    const err = nativeError(() => native.closeFd(1_000_000))
    expect(err.code).toBe('EBADF')
    expect(err.syscall).toBe('close')
  })
})
