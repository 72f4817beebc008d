/**
 * A streaming RESP2 reply parser for the page-read connection. Unlike
 * ioredis's parser it copies each bulk value once, straight from the socket's
 * (reused) read buffer into a buffer the caller supplies: page-sized values
 * into pooled, already-touched memory. It knows only what page reads get
 * back: simple strings, errors, integers, bulk strings, nil, and flat arrays
 * of those.
 */

/** An error reply (`-ERR …`) from the server: the command failed, the connection is fine. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError'
}

/** Bytes that are not RESP (or not a reply a page read gets): the stream is out of step for good. */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError'
}

export type RespValue = Buffer | null | string | number | RedisReplyError
export type RespReply = RespValue | RespValue[]

/** The longest header line accepted (error messages included): a longer one means the stream is not RESP. */
const MAX_LINE = 64 * 1024
/** Redis's own default limit on a bulk string (proto-max-bulk-len). */
export const DEFAULT_MAX_BULK_LENGTH = 512 * 2 ** 20

export interface RespParserOptions {
  /** The longest bulk value accepted: a longer length is refused before anything is allocated for it. */
  maxBulkLength?: number
}
const CR = 13
const LF = 10

export class RespParser {
  /** Header bytes that arrived without their line end yet. */
  private line = Buffer.allocUnsafe(256)
  private lineLength = 0
  /** The bulk value being received, where its next byte goes, and how many are still to come. */
  private value: Buffer | undefined
  private valueAt = 0
  private valueLeft = 0
  /** Bytes of the CRLF after a bulk value still to come. */
  private crlfLeft = 0
  /** The array being received, and its elements still to come. */
  private items: RespValue[] | undefined
  private itemsLeft = 0

  private readonly maxBulkLength: number

  /**
   * @param allocate a buffer for a bulk value of `length` bytes, exactly that long.
   * @param onReply called with each complete top-level reply, in order.
   */
  constructor(
    private readonly allocate: (length: number) => Buffer,
    private readonly onReply: (reply: RespReply) => void,
    options: RespParserOptions = {},
  ) {
    this.maxBulkLength = options.maxBulkLength ?? DEFAULT_MAX_BULK_LENGTH
  }

  /** Parses `chunk[0, end)`. Throws a RespProtocolError on bytes that are not RESP; the stream is then unusable. */
  feed(chunk: Buffer, end: number): void {
    let i = 0
    while (i < end) {
      if (this.valueLeft > 0) {
        const take = Math.min(this.valueLeft, end - i)
        chunk.copy(this.value!, this.valueAt, i, i + take)
        this.valueAt += take
        this.valueLeft -= take
        i += take
        if (this.valueLeft === 0) this.crlfLeft = 2
      } else if (this.crlfLeft > 0) {
        // Checked, not skipped: a value whose length was wrong would otherwise
        // come out the right length with the next reply's bytes in it.
        if (chunk[i] !== (this.crlfLeft === 2 ? CR : LF)) throw new RespProtocolError('a bulk value not followed by CRLF: the stream is not RESP')
        this.crlfLeft--
        i++
        if (this.crlfLeft === 0) {
          const value = this.value!
          this.value = undefined
          this.element(value)
        }
      } else {
        // indexOf may look past `end` into stale bytes of a reused buffer: only a hit before `end` counts.
        const lf = chunk.indexOf(LF, i)
        if (lf === -1 || lf >= end) {
          this.keep(chunk, i, end)
          return
        }
        if (this.lineLength === 0) {
          // The same limit as for a line that spans reads: how the stream is cut must not change the outcome.
          if (lf - i > MAX_LINE) throw tooLong()
          this.header(chunk, i, lf)
        } else {
          this.keep(chunk, i, lf)
          this.header(this.line, 0, this.lineLength)
          this.lineLength = 0
        }
        i = lf + 1
      }
    }
  }

  /** True between replies: nothing half-received. */
  get idle(): boolean {
    return this.lineLength === 0 && this.value === undefined && this.items === undefined
  }

  private keep(chunk: Buffer, from: number, to: number): void {
    const needed = this.lineLength + (to - from)
    if (needed > MAX_LINE) throw tooLong()
    if (needed > this.line.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, 2 * this.line.length))
      this.line.copy(grown, 0, 0, this.lineLength)
      this.line = grown
    }
    chunk.copy(this.line, this.lineLength, from, to)
    this.lineLength = needed
  }

  /** One header line, `bytes[from, lf)` where `lf` is the LF's index; it must end in CR, which is dropped. */
  private header(bytes: Buffer, from: number, lf: number): void {
    if (lf === from || bytes[lf - 1] !== CR) throw new RespProtocolError('a reply header not ended by CRLF: the stream is not RESP')
    const to = lf - 1
    const type = to > from ? bytes[from] : undefined
    switch (type) {
      case 0x24: {
        // $<length>: a bulk string, or nil
        const length = lengthOf(bytes, from + 1, to)
        if (length === -1) return this.element(null)
        // A corrupted length must not cost gigabytes of address space (and a wait for them).
        if (length > this.maxBulkLength) throw new RespProtocolError(`a bulk length of ${length} bytes, past the ${this.maxBulkLength} accepted: the stream is not RESP`)
        this.value = this.allocate(length)
        this.valueAt = 0
        this.valueLeft = length
        if (length === 0) this.crlfLeft = 2
        return
      }
      case 0x2a: {
        // *<count>
        const count = lengthOf(bytes, from + 1, to)
        if (this.items !== undefined) throw new RespProtocolError('a nested array in a reply: not a page read reply')
        if (count === -1) return this.element(null)
        if (count === 0) return this.onReply([])
        this.items = []
        this.itemsLeft = count
        return
      }
      case 0x2b:
        return this.element(bytes.toString('utf8', from + 1, to))
      case 0x2d:
        return this.element(new RedisReplyError(bytes.toString('utf8', from + 1, to)))
      case 0x3a:
        return this.element(integer(bytes, from + 1, to))
      default:
        throw new RespProtocolError(`unexpected reply type byte ${type === undefined ? '(none)' : `0x${type.toString(16)}`}: the stream is not RESP`)
    }
  }

  private element(value: RespValue): void {
    const items = this.items
    if (items === undefined) return this.onReply(value)
    items.push(value)
    if (--this.itemsLeft === 0) {
      this.items = undefined
      this.onReply(items)
    }
  }
}

function tooLong(): RespProtocolError {
  return new RespProtocolError(`a reply header longer than ${MAX_LINE} bytes: the stream is not RESP`)
}

/**
 * A bulk length or an array count: -1 for nil, else digits. Any other
 * negative is not RESP; taking it for nil would turn a corrupted length
 * into an absent page.
 */
function lengthOf(bytes: Buffer, from: number, to: number): number {
  if (bytes[from] !== 0x2d) return integer(bytes, from, to)
  if (to - from === 2 && bytes[from + 1] === 0x31) return -1
  throw new RespProtocolError('a negative length other than -1 in a reply header: the stream is not RESP')
}

/** A RESP integer from ASCII digits, with an optional minus sign. */
function integer(bytes: Buffer, from: number, to: number): number {
  let negative = false
  let i = from
  if (bytes[i] === 0x2d) {
    negative = true
    i++
  }
  if (i >= to) throw new RespProtocolError('an empty number in a reply header: the stream is not RESP')
  let n = 0
  for (; i < to; i++) {
    const digit = bytes[i]! - 0x30
    if (digit < 0 || digit > 9) throw new RespProtocolError('a malformed number in a reply header: the stream is not RESP')
    n = n * 10 + digit
  }
  if (n > Number.MAX_SAFE_INTEGER) throw new RespProtocolError('a number out of range in a reply header')
  return negative ? -n : n
}
