/**
 * A peer whose attach was refused still has its range registered on the
 * descriptor it sent. Closing that descriptor would unregister the range and
 * its pages would silently read as zeros (Firecracker never reads our
 * reply). So the server keeps it until the process exits and answers every
 * fault on it with SIGBUS (UFFDIO_POISON): the peer fails loudly instead.
 */
import { constants, native, type Watcher } from '@faultline/native'
import { poisonFault } from '../pager/peer.js'
import { closeQuietly, processAlive } from './session.js'

const CHECK_MS = 500

export class RefusedPeer {
  private readonly watcher: Watcher
  private readonly timer: NodeJS.Timeout
  private closed = false

  constructor(
    private readonly uffd: number,
    readonly pid: number,
    onClosed: () => void,
  ) {
    this.watcher = native.watch(uffd, 64, (count, messages) => this.poison(count, messages))
    this.timer = setInterval(() => {
      if (processAlive(pid)) return
      this.close()
      onClosed()
    }, CHECK_MS)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    this.watcher.stop()
    closeQuietly(this.uffd)
  }

  private poison(count: number, messages: Float64Array): void {
    for (let m = 0; m < count; m++) {
      if (messages[m * 4] === constants.UFFD_EVENT_PAGEFAULT) poisonFault(this.uffd, messages[m * 4 + 2]!)
    }
  }
}
