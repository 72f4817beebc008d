/**
 * The control file protocol of shared regions (packages/core/src/shared),
 * without regions: attachments in this process, and "dead processes" made by
 * writing an exited child's pid into a slot.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SharedSegment, type SegmentOptions } from '../../packages/core/src/shared/segment.js'
import { EMPTY, EVICTING, FETCHING, H, PRESENT, S, SLOT_BASE, SLOT_WORDS, STATE_BASE } from '../../packages/core/src/shared/layout.js'

const PAGE = 4096
const PAGES = 64
let dir: string
const options = (extra: Partial<SegmentOptions> = {}): SegmentOptions => ({ dir, name: 'unit', identity: { backend: 'test x', version: 'v1', size: PAGES * PAGE, pageSize: PAGE }, budgetPages: 0, ...extra })
/** A pid that was a process a moment ago: exited and reaped. */
const deadPid = (): number => spawnSync('true').pid!

function fakeDeadSlot(seg: SharedSegment, slot: number): void {
  Atomics.store(seg.cells, SLOT_BASE + slot * SLOT_WORDS + S.start, 12345)
  Atomics.store(seg.cells, SLOT_BASE + slot * SLOT_WORDS + S.pid, deadPid())
}

beforeEach(() => {
  dir = mkdtempSync('/dev/shm/faultline-segment-test-')
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('shared segment', () => {
  it('claims are exclusive; PRESENT is seen by every attachment; the last to leave removes the files', () => {
    const a = SharedSegment.open(options())
    const b = SharedSegment.open(options())
    expect(a.pagesPath).toBe(b.pagesPath)
    expect(a.slot).not.toBe(b.slot)
    expect(a.tryClaim(3)).toBe(true)
    expect(b.tryClaim(3)).toBe(false)
    expect(b.state(3)).toBe(FETCHING | a.slot)
    expect(b.ownerAlive(b.state(3))).toBe(true)
    expect(b.takeOver(3, b.state(3))).toBe(true) // takeOver itself does not check liveness: the caller does
    b.release(3)
    expect(a.tryClaim(3)).toBe(true)
    expect(a.markPresent(3)).toBe(true)
    expect(b.state(3)).toBe(PRESENT)
    expect(b.markPresent(3)).toBe(false)
    expect(Atomics.load(b.cells, H.resident)).toBe(1)
    a.leave()
    expect(readdirSync(dir).length).toBe(2)
    b.leave()
    expect(readdirSync(dir)).toEqual([])
  })

  it("a dead owner's claim is taken over; a dead evictor's page is punched, then claimed", () => {
    const a = SharedSegment.open(options())
    fakeDeadSlot(a, 9)
    Atomics.store(a.cells, STATE_BASE + 5, FETCHING | 9)
    Atomics.store(a.cells, STATE_BASE + 6, EVICTING | 9)
    expect(a.ownerAlive(FETCHING | 9)).toBe(false)
    expect(a.takeOver(5, FETCHING | 9)).toBe(true)
    expect(a.state(5)).toBe(a.fetching)
    expect(a.takeOver(6, EVICTING | 9)).toBe(true)
    expect(a.state(6)).toBe(a.fetching)
    expect(Atomics.load(a.cells, H.takenOver)).toBe(2)
    a.leave()
  })

  it("attaching frees dead processes' slots and punches their claims", () => {
    const a = SharedSegment.open(options())
    fakeDeadSlot(a, 7)
    Atomics.store(a.cells, STATE_BASE + 2, FETCHING | 7)
    // Its copy had landed before it died: the page is in the file though not PRESENT.
    const fd = openSync(a.pagesPath, 'r+')
    writeSync(fd, Buffer.alloc(PAGE, 1), 0, PAGE, 2 * PAGE)
    const b = SharedSegment.open(options())
    expect(b.state(2)).toBe(EMPTY)
    expect(Atomics.load(b.cells, SLOT_BASE + 7 * SLOT_WORDS + S.pid)).toBe(0)
    const back = Buffer.alloc(PAGE)
    readSync(fd, back, 0, PAGE, 2 * PAGE)
    expect(back.every((x) => x === 0)).toBe(true)
    closeSync(fd)
    a.leave()
    b.leave()
  })

  it('a stale segment (no live process attached) is reinitialised by the next open', () => {
    const a = SharedSegment.open(options())
    expect(a.tryClaim(1)).toBe(true)
    expect(a.markPresent(1)).toBe(true)
    // Everyone attached is gone: a's own slot now names a dead process.
    fakeDeadSlot(a, a.slot)
    const b = SharedSegment.open(options())
    expect(b.state(1)).toBe(EMPTY)
    expect(Atomics.load(b.cells, H.resident)).toBe(0)
    b.leave()
    expect(readdirSync(dir)).toEqual([])
    a.abandon()
  })

  it('another version, size or page size is another segment', () => {
    const a = SharedSegment.open(options())
    const b = SharedSegment.open(options({ identity: { backend: 'test x', version: 'v2', size: PAGES * PAGE, pageSize: PAGE } }))
    const c = SharedSegment.open(options({ identity: { backend: 'test x', version: 'v1', size: PAGES * PAGE, pageSize: 2 * PAGE } }))
    expect(new Set([a.pagesPath, b.pagesPath, c.pagesPath]).size).toBe(3)
    for (const s of [a, b, c]) s.leave()
    expect(readdirSync(dir)).toEqual([])
  })

  it('past the budget, the clock drops PRESENT pages to 90% of it (punched), never claimed ones', () => {
    const a = SharedSegment.open(options({ budgetPages: 20 }))
    const b = SharedSegment.open(options({ budgetPages: 32 }))
    expect(Atomics.load(b.cells, H.budget)).toBe(20) // the smallest
    const fd = openSync(a.pagesPath, 'r+')
    for (let p = 0; p < 24; p++) {
      expect(a.tryClaim(p)).toBe(true)
      writeSync(fd, Buffer.alloc(PAGE, 1), 0, PAGE, p * PAGE)
      if (p !== 0) a.markPresent(p) // page 0 stays FETCHING
    }
    const dropped = b.evictIfOver()
    expect(Atomics.load(a.cells, H.resident)).toBe(18)
    expect(dropped.length).toBe(5)
    expect(dropped).not.toContain(0)
    expect(a.state(0)).toBe(a.fetching)
    const back = Buffer.alloc(PAGE)
    for (const p of dropped) {
      expect(a.state(p)).toBe(EMPTY)
      readSync(fd, back, 0, PAGE, p * PAGE)
      expect(back.every((x) => x === 0)).toBe(true)
    }
    closeSync(fd)
    a.leave()
    b.leave()
  })
})
