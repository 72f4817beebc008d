/**
 * The file backend's write-ahead journal, `<path>.faultline-journal`: each
 * write batch goes there first as one record, and only once a commit record
 * follows (and, with `sync`, is durable) are the pages copied into the
 * file. A crash while they are copied leaves the journal whole: the next
 * open copies them again. A crash before the commit leaves the file as it
 * was. Either way no page of the file is ever half one version and half
 * another (see docs/writes.md, and file.ts for the order of the steps).
 */
import { randomFillSync } from 'node:crypto'
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, unlinkSync, constants as fsConstants } from 'node:fs'
import { dirname } from 'node:path'
import type { PageWrite } from '@faultline/contract'
import { FaultlineError } from '@faultline/contract'
import { encodeHeader, EPOCH_BYTES, MAGIC } from './format.js'
import { writeFully } from './io.js'
import { JournalPages } from './pages.js'
import { scanJournal } from './scan.js'

export function journalPath(dataPath: string): string {
  return `${dataPath}.faultline-journal`
}

export class Journal {
  private fd: number | undefined
  private pages: JournalPages | undefined
  private epoch = newEpoch()
  private sequence = 0
  /** Where the next record goes: the end of the last whole one. */
  private end = 0
  /** The journal file's length: records of an earlier flush may lie past `end`. */
  private length = 0

  constructor(
    readonly path: string,
    private readonly pageSize: number,
    /** fdatasync the journal before its pages are copied into the file, so a power loss cannot tear them either. */
    private readonly durable: boolean,
  ) {}

  /** Pages journaled since the last reset, not all in the file yet: reads take them from here. */
  get pending(): JournalPages | undefined {
    return this.pages !== undefined && this.pages.size > 0 ? this.pages : undefined
  }

  /**
   * Appends one record holding `pages`, with one write. If it fails, the
   * next record is written over what it left: the journal stays a run of
   * whole records.
   */
  append(pages: readonly PageWrite[]): void {
    const { fd, pages: pending } = this.opened()
    const data = pages.map((p) => p.data)
    const header = encodeHeader({ kind: 'pages', pageSize: this.pageSize, sequence: this.sequence, epoch: this.epoch, indexes: pages.map((p) => p.index) }, data)
    writeFully(fd, [header, ...data], this.end)
    const dataAt = this.end + header.byteLength
    pages.forEach((p, i) => pending.set(p.index, dataAt + i * this.pageSize))
    this.end = dataAt + pages.length * this.pageSize
    this.length = Math.max(this.length, this.end)
    this.sequence++
  }

  /** Appends a commit record and, when durable, fdatasyncs: from here on the pending pages are the file's, whatever happens. */
  commit(): void {
    const { fd } = this.opened()
    const header = encodeHeader({ kind: 'commit', pageSize: this.pageSize, sequence: this.sequence, epoch: this.epoch, indexes: [] }, [])
    writeFully(fd, [header], this.end)
    this.end += header.byteLength
    this.length = Math.max(this.length, this.end)
    this.sequence++
    if (this.durable) fdatasyncSync(fd)
  }

  /** Copies the pending pages into the data file, in place. Only after {@link commit}. */
  apply(dataFd: number): void {
    this.pending?.copyTo(dataFd)
  }

  /**
   * Empties the journal: only once the file holds its pages (durably, when
   * durable). Its first record's magic is zeroed, so a reader finds no
   * record; the next flush writes over the rest. Keeping the blocks means
   * that flush's fdatasync has no allocation to commit (a fifth less time
   * than after a truncation, on ext4 here); the journal is cut to this
   * flush's length, so one large flush does not hold its space until close.
   * None of it need be durable: records that come back after a power loss
   * hold pages the file already has, and those past a newer record are told
   * apart by their older epoch.
   */
  reset(): void {
    if (this.fd === undefined || this.end === 0) return
    if (this.length > this.end) ftruncateSync(this.fd, this.end)
    this.length = this.end
    writeFully(this.fd, [Buffer.alloc(MAGIC.byteLength)], 0)
    this.pages?.clear()
    this.epoch = newEpoch()
    this.sequence = 0
    this.end = 0
  }

  /** Closes the journal, and removes it when it holds nothing. */
  close(): void {
    if (this.fd === undefined) return
    closeSync(this.fd)
    this.fd = undefined
    if (this.end === 0) removeQuietly(this.path)
  }

  /**
   * Created at the first write, so a region that never writes leaves no
   * journal. Its directory entry is made durable before any commit relies
   * on it: a journal whose name a power loss took could not be replayed.
   */
  private opened(): { fd: number; pages: JournalPages } {
    if (this.fd !== undefined && this.pages !== undefined) return { fd: this.fd, pages: this.pages }
    let fd: number | undefined
    try {
      // Truncated: whatever it held was replayed when the file was opened.
      fd = openSync(this.path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o644)
      if (this.durable) syncDirectory(dirname(this.path))
    } catch (cause) {
      if (fd !== undefined) closeSync(fd)
      throw new FaultlineError('ERR_BACKEND', `faultline: cannot create the journal ${this.path}: ${(cause as Error).message} (the file backend option journal: false writes without one)`, { option: 'backend.journal', cause })
    }
    this.fd = fd
    this.pages = new JournalPages(fd, this.pageSize)
    return { fd, pages: this.pages }
  }
}

/**
 * Brings a file opened for writing up to date with the journal a crash
 * left, if any: copies the pages of its committed records in place, makes
 * them durable (when durable), and only then empties and removes the
 * journal. A crash in between leaves the journal to be replayed again.
 * Returns how many pages were copied.
 */
export function replayJournal(path: string, dataFd: number, durable: boolean): number {
  const fd = openJournal(path, fsConstants.O_RDWR)
  if (fd === undefined) return 0
  let replayed: number
  try {
    const { committed } = scanJournal(fd)
    if (committed !== undefined) {
      committed.copyTo(dataFd)
      if (durable) fdatasyncSync(dataFd)
    }
    ftruncateSync(fd, 0)
    replayed = committed?.size ?? 0
  } catch (cause) {
    throw journalError(path, 'replay', cause)
  } finally {
    closeSync(fd)
  }
  removeQuietly(path)
  return replayed
}

/**
 * The committed pages of the journal next to a file opened read-only, to be
 * read over the file's own bytes (it cannot be replayed without write
 * access), or undefined when there is none. The caller closes `fd`.
 */
export function readJournal(path: string): JournalPages | undefined {
  const fd = openJournal(path, fsConstants.O_RDONLY)
  if (fd === undefined) return undefined
  try {
    const { committed } = scanJournal(fd)
    if (committed === undefined) closeSync(fd)
    return committed
  } catch (cause) {
    closeSync(fd)
    throw journalError(path, 'read', cause)
  }
}

function openJournal(path: string, flags: number): number | undefined {
  try {
    return openSync(path, flags)
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw journalError(path, flags === fsConstants.O_RDONLY ? 'read' : 'replay', cause)
  }
}

function journalError(path: string, what: 'read' | 'replay', cause: unknown): FaultlineError {
  return new FaultlineError('ERR_BACKEND', `faultline: cannot ${what} the journal ${path}: ${(cause as Error).message}; it may hold pages of a flush a crash interrupted, so the file is not opened without it`, { option: 'backend.path', cause })
}

function newEpoch(): Buffer {
  return randomFillSync(Buffer.alloc(EPOCH_BYTES))
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, fsConstants.O_RDONLY)
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // An empty journal left behind (a directory we cannot write) is harmless: it replays nothing.
  }
}
