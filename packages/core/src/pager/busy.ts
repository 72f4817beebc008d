/**
 * EAGAIN from a userfaultfd ioctl (COPY, ZEROPAGE, WRITEPROTECT) means an
 * event (REMOVE, UNMAP) is queued unread, or the madvise that queued it has
 * not finished: read it, and try again, for up to a second of such EAGAINs.
 * Only a peer's descriptor has events enabled; a region's never says EAGAIN.
 */
import { constants, native } from '@faultline/native'
import { FaultlineError } from '../errors.js'

export class BusyRetry {
  private spins = 0
  private since: number | undefined

  constructor(
    /** Reads the queued events (the kernel lets the ioctl through once they are read). */
    private readonly onBusy: (() => void) | undefined,
    /** What kept failing, for the error: "installing the page at 0x…". */
    private readonly what: () => string,
  ) {}

  /** Called on each EAGAIN, before trying again; throws once EAGAINs have lasted a second. */
  again(): void {
    this.onBusy?.()
    if (++this.spins > 1000 && performance.now() - (this.since ??= performance.now()) > 1000) {
      throw new FaultlineError('ERR_PAGER_FAILED', `faultline: ${this.what()} kept failing with EAGAIN for a second (the address space kept changing, or an event on the userfaultfd was never read)`)
    }
  }
}

/** Write-protects (or unprotects) a range, reading queued events while the kernel says EAGAIN. */
export function writeProtect(fd: number, address: number, length: number, protect: boolean, onBusy: (() => void) | undefined): void {
  const mode = protect ? constants.UFFDIO_WRITEPROTECT_MODE_WP : 0
  if (native.uffdWriteProtect(fd, address, length, mode) !== -constants.EAGAIN) return
  const busy = new BusyRetry(onBusy, () => `${protect ? 'write-protecting' : 'unprotecting'} ${length} bytes at 0x${address.toString(16)}`)
  do busy.again()
  while (native.uffdWriteProtect(fd, address, length, mode) === -constants.EAGAIN)
}
