/**
 * The file backend: a local file in the region's layout (page i at byte
 * i × pageSize). Reads and writes are synchronous syscalls on the pager
 * thread, never the libuv threadpool: a pool thread may be the one asleep
 * in a page fault (fs.write from a region view).
 *
 * Writes go through a journal next to the file (journal/journal.ts), so a
 * crash never leaves a page torn: the kernel cuts a write short at any 4 KiB
 * boundary when the process is killed, and a power loss can keep part of
 * one.
 */
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, constants as fsConstants } from 'node:fs'
import { isAbsolute } from 'node:path'
import type { Backend, BackendContext, BackendInfo, BackendSpec, PageWrite } from '@faultline/contract'
import { FaultlineError } from '@faultline/contract'
import { Extents } from './extents.js'
import { Journal, journalPath, readJournal, replayJournal } from './journal/journal.js'
import { writeFully } from './journal/io.js'
import type { JournalPages } from './journal/pages.js'
import { optionalBoolean } from './remote/options.js'
import { checkKnownOptions, consecutiveRuns, optionError } from './spec.js'

export interface FileBackendOptions {
  type: 'file'
  /** Absolute path of the file. */
  path: string
  /** Open the file read-only: the region never writes back. Default false. */
  readOnly?: boolean
  /** Create the file if it does not exist (read-write only). Default true. */
  create?: boolean
  /** fdatasync at the end of each flush, so a resolved flush survives a crash. Default true. */
  sync?: boolean
  /**
   * Write each flush to a journal, `<path>.faultline-journal`, before
   * writing its pages into the file, so that a crash during a flush (the
   * process killed; with `sync`, a power loss too) never leaves a page half
   * written, and leaves every page as of the same flush. The pages are
   * written twice, and with `sync` there is one more fdatasync per flush
   * (docs/writes.md). The journal is created in the file's directory at the
   * first write and removed at close. With `false`, a page being written
   * when the process dies may be left half old, half new. Either way a
   * journal a crash left behind is replayed when the file is next opened.
   * Default true.
   */
  journal?: boolean
}

export class FileBackend implements Backend {
  readonly info: BackendInfo
  private readonly fd: number
  private readonly extents: Extents
  /** Pages written through this backend: no longer holes, whatever the scan said. */
  private readonly written = new Set<number>()
  private length: number
  private readonly durable: boolean
  /** Where writes go first (read-write, unless `journal: false`). */
  private readonly journal: Journal | undefined
  /** Read-only, over a journal a crash left: its pages are read over the file's. */
  private readonly leftJournal: JournalPages | undefined

  constructor(options: FileBackendOptions, private readonly context: BackendContext) {
    const spec = options as unknown as Record<string, unknown>
    checkKnownOptions('file', spec, ['path', 'readOnly', 'create', 'sync', 'journal'])
    const journal = optionalBoolean('file', spec, 'journal') ?? true
    const { path } = options
    if (typeof path !== 'string' || !isAbsolute(path)) {
      throw optionError('file', 'path', `must be an absolute file path (got ${JSON.stringify(path)})`)
    }
    const readOnly = options.readOnly === true || context.readOnly
    const create = options.create !== false
    const flags = readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR | (create ? fsConstants.O_CREAT : 0)
    try {
      this.fd = openSync(path, flags, 0o644)
    } catch (cause) {
      throw new FaultlineError('ERR_BACKEND', `faultline: cannot open ${path}${readOnly ? ' for reading' : ' for reading and writing'}: ${(cause as Error).message}`, { option: 'backend.path', cause })
    }
    if (!fstatSync(this.fd).isFile()) {
      closeSync(this.fd)
      throw optionError('file', 'path', `must name a regular file (${path} is not one)`)
    }
    this.durable = options.sync !== false
    try {
      // Before anything reads the file: a journal a crash left holds pages newer than the file's.
      if (readOnly) this.leftJournal = readJournal(journalPath(path))
      else replayJournal(journalPath(path), this.fd, this.durable)
    } catch (err) {
      closeSync(this.fd)
      throw err
    }
    this.length = Math.max(fstatSync(this.fd).size, this.leftJournal?.end() ?? 0)
    this.extents = Extents.scan(this.fd, this.length)
    // A read-write region larger than its file extends it sparsely, so the
    // file records the region's size and a later open can leave `size` out.
    if (!readOnly && context.size !== undefined && this.length < context.size) {
      ftruncateSync(this.fd, context.size)
      this.length = context.size
    }
    this.journal = !readOnly && journal ? new Journal(journalPath(path), context.pageSize, this.durable) : undefined
    const stat = fstatSync(this.fd, { bigint: true })
    // A journal left behind holds pages newer than the file: their size is part of the version.
    const version = `file:${stat.dev}:${stat.ino}:${stat.mtimeNs}:${stat.size}${this.leftJournal === undefined ? '' : `:journal${this.length}`}`
    // Without a journal a write is writev calls made before write() returns; the journal keeps the pages until sync().
    const synchronousWrites = !readOnly && this.journal === undefined
    this.info = { name: `file:${path}`, size: this.length === 0 ? undefined : this.length, readOnly, maxBatchPages: 256, synchronousWrites, version }
  }

  /** Read-only with no journal over the file: its bytes are the pages, so the native watcher may pread them. */
  filePages(): { fd: number; length: number } | undefined {
    if (!this.info.readOnly || this.overlay() !== undefined) return undefined
    return { fd: this.fd, length: this.length }
  }

  /** Pages newer than the file's own bytes, read over them. */
  private overlay(): JournalPages | undefined {
    return this.leftJournal ?? this.journal?.pending
  }

  isAbsent(index: number): boolean {
    if (this.written.has(index)) return false
    const start = index * this.context.pageSize
    const end = start + this.context.pageSize
    if (this.leftJournal?.covers(start, end)) return false
    return start >= this.length || this.extents.isHole(start, end)
  }

  async read(indexes: readonly number[]): Promise<Array<Uint8Array | undefined>> {
    return this.readInto(indexes, (bytes) => Buffer.alloc(bytes))
  }

  /**
   * Reads into one scratch buffer reused from call to call: the pager
   * installs what readSync returns before it calls again, and a fresh buffer
   * per batch would make the kernel allocate (and zero) every page twice.
   */
  readSync(indexes: readonly number[]): Array<Uint8Array | undefined> {
    return this.readInto(indexes, (bytes) => {
      if (this.scratch.byteLength < bytes) this.scratch = Buffer.allocUnsafeSlow(bytes)
      return this.scratch
    })
  }

  private scratch = Buffer.alloc(0)

  private readInto(indexes: readonly number[], bufferFor: (bytes: number) => Buffer): Array<Uint8Array | undefined> {
    const { pageSize } = this.context
    const out: Array<Uint8Array | undefined> = new Array(indexes.length)
    const runs = consecutiveRuns(indexes)
    const total = runs.reduce((sum, [, count]) => sum + count, 0) * pageSize
    const buffer = bufferFor(total)
    const overlay = this.overlay()
    let offset = 0
    for (const [first, count, at] of runs) {
      const start = first * pageSize
      const run = buffer.subarray(offset, offset + count * pageSize)
      offset += run.byteLength
      if (start >= this.length) continue
      const wanted = Math.min(run.byteLength, this.length - start)
      let got = 0
      while (got < wanted) {
        const n = readSync(this.fd, run, got, wanted - got, start + got)
        if (n === 0) break
        got += n
      }
      // A page that straddles the end of the file reads as zeros past it.
      run.fill(0, got)
      overlay?.overlay(run, start)
      for (let i = 0; i < count; i++) {
        const pageStart = start + i * pageSize
        out[at + i] = pageStart < this.length ? run.subarray(i * pageSize, (i + 1) * pageSize) : undefined
      }
    }
    return out
  }

  async write(pages: readonly PageWrite[]): Promise<void> {
    if (this.info.readOnly) throw new FaultlineError('ERR_READ_ONLY', `faultline: ${this.info.name} is opened read-only`)
    const { pageSize } = this.context
    const sorted = [...pages].sort((a, b) => a.index - b.index)
    if (this.journal !== undefined) {
      // Into the file at sync(), once the batches of the flush are committed.
      this.journal.append(sorted)
    } else {
      // One writev per run of consecutive pages: a scattered flush has many short runs.
      for (const [first, count, at] of consecutiveRuns(sorted.map((p) => p.index))) {
        writeFully(this.fd, sorted.slice(at, at + count).map((p) => p.data), first * pageSize)
      }
    }
    for (const { index } of sorted) {
      this.written.add(index)
      this.length = Math.max(this.length, (index + 1) * pageSize)
    }
  }

  /**
   * The order is what keeps pages whole: the journal is committed (and
   * durable) before any of its pages is written in place, and emptied only
   * once they are in the file (and durable). A crash before the commit
   * leaves the file as of the last flush; after it, the next open copies
   * the committed pages in again.
   */
  async sync(): Promise<void> {
    const journal = this.journal
    if (journal?.pending !== undefined) {
      journal.commit()
      journal.apply(this.fd)
    }
    if (this.durable) fdatasyncSync(this.fd)
    journal?.reset()
  }

  async close(): Promise<void> {
    closeSync(this.fd)
    this.journal?.close()
    if (this.leftJournal !== undefined) closeSync(this.leftJournal.fd)
  }
}

export async function createFileBackend(spec: BackendSpec, context: BackendContext): Promise<Backend> {
  return new FileBackend(spec as unknown as FileBackendOptions, context)
}
