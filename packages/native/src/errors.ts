/** Errors thrown by the addon when a syscall fails. */

/** errno names the binding reports; any other errno comes through as `E<number>`. */
export type NativeErrorCode =
  | 'EPERM' | 'ENOENT' | 'ESRCH' | 'EINTR' | 'EIO' | 'EBADF' | 'EAGAIN' | 'ENOMEM'
  | 'EACCES' | 'EFAULT' | 'EBUSY' | 'EEXIST' | 'ENODEV' | 'EINVAL' | 'EMFILE' | 'ENFILE'
  | 'ENOTTY' | 'ENOSPC' | 'ESPIPE' | 'ENOSYS' | 'ENXIO' | 'EOPNOTSUPP'
  // the rest of the addon's table (src/errors.cc)
  | 'E2BIG' | 'ENOEXEC' | 'ECHILD' | 'ENOTBLK' | 'EXDEV' | 'ENOTDIR' | 'EISDIR' | 'ETXTBSY'
  | 'EFBIG' | 'EROFS' | 'EMLINK' | 'EPIPE' | 'EDOM' | 'ERANGE' | 'EDEADLK' | 'ENAMETOOLONG'
  | 'ENOLCK' | 'ENOTEMPTY' | 'ELOOP' | 'ENOMSG' | 'EOVERFLOW' | 'EBADFD' | 'ETIMEDOUT'
  | 'ECANCELED' | 'EOWNERDEAD' | 'EHWPOISON'
  | `E${number}`

/**
 * A failed syscall. `syscall` names it precisely, e.g. `ioctl(UFFDIO_COPY)`
 * or `mmap`, and `code` is the errno name.
 */
export interface NativeError extends Error {
  code: NativeErrorCode
  /** The positive errno value, e.g. 17 for EEXIST. */
  errno: number
  syscall: string
}

/** Type guard for errors thrown by the addon's syscall wrappers. */
export function isNativeError(err: unknown): err is NativeError {
  return (
    err instanceof Error &&
    typeof (err as Partial<NativeError>).code === 'string' &&
    typeof (err as Partial<NativeError>).errno === 'number' &&
    typeof (err as Partial<NativeError>).syscall === 'string'
  )
}

/** The constructor name the addon gives its errors (`err.name`). */
export const NativeError = 'FaultlineNativeError' as const
