/**
 * What a descriptor a peer passed really is, from /proc: a peer may pass
 * any file, and one that asks for write-back may not have enabled
 * write-protect faults on its userfaultfd.
 */
import { readFileSync, readlinkSync } from 'node:fs'

export interface PassedFd {
  /** What the descriptor is, as /proc/self/fd names it (e.g. `anon_inode:[userfaultfd]`, `/etc/passwd`). */
  kind: string
  /** The features the peer enabled with UFFDIO_API (from fdinfo's `API:` line), for a userfaultfd. */
  features: number | undefined
}

export const UFFD_KIND = 'anon_inode:[userfaultfd]'

export function inspectFd(fd: number): PassedFd {
  let kind: string
  try {
    kind = readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return { kind: 'a closed descriptor', features: undefined }
  }
  if (kind !== UFFD_KIND) return { kind, features: undefined }
  try {
    // "API:\taa:<features>:<ioctls>" (hex); the top bit of features is the kernel's own "initialized" mark.
    const api = /^API:\s*[0-9a-f]+:([0-9a-f]+):/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))
    return { kind, features: api === null ? undefined : Number.parseInt(api[1]!, 16) % 2 ** 31 }
  } catch {
    return { kind, features: undefined }
  }
}
