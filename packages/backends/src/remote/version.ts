/**
 * What a remote object looked like when the region was opened, and the check
 * that every later response still comes from that same object. Without it a
 * region could hold pages of two versions of a file at once.
 */
import { FaultlineError } from '@faultline/contract'

/** Identity of one version of a remote object, as its responses report it. */
export interface ObjectVersion {
  /** The entity tag, quotes and `W/` included, as the server sent it. */
  etag: string | undefined
  /** The Last-Modified header, used only when there is no ETag. */
  lastModified: string | undefined
  /** The object's total length in bytes. */
  size: number
}

export class PinnedVersion {
  private changed: FaultlineError | undefined

  constructor(
    private readonly name: string,
    readonly pinned: ObjectVersion,
  ) {}

  /** Throws (now and for ever after) if `seen` is not the pinned version. */
  check(seen: ObjectVersion): void {
    if (this.changed !== undefined) throw this.changed
    const what = differs(this.pinned, seen)
    if (what === undefined) return
    // Sticky: even if the object changes back, this region may already hold
    // pages of the other version, so nothing more is read from it.
    this.changed = changedError(this.name, what)
    throw this.changed
  }

  /** Throws if a change was seen before. */
  assertUnchanged(): void {
    if (this.changed !== undefined) throw this.changed
  }

  /** Records a change a source noticed another way (the range is no longer there): throws. */
  markChanged(what: string): never {
    this.changed ??= changedError(this.name, what)
    throw this.changed
  }
}

/** A source's way of saying "the object is not what it was" when no version was seen (e.g. 416). */
export class ObjectChanged extends Error {
  constructor(readonly what: string) {
    super(what)
  }
}

function changedError(name: string, what: string): FaultlineError {
  return new FaultlineError(
    'ERR_SOURCE_CHANGED',
    `faultline: ${name} changed since the region was opened (${what}); pages of the new version are not mixed with the old: reopen the region to map the new version`,
  )
}

function differs(a: ObjectVersion, b: ObjectVersion): string | undefined {
  if (a.etag !== undefined || b.etag !== undefined) {
    if (a.etag !== b.etag) return `ETag ${a.etag ?? 'none'} → ${b.etag ?? 'none'}`
  } else if (a.lastModified !== b.lastModified) {
    return `Last-Modified ${a.lastModified ?? 'none'} → ${b.lastModified ?? 'none'}`
  }
  if (a.size !== b.size) return `length ${a.size} → ${b.size} bytes`
  return undefined
}

