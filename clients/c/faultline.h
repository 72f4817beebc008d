/*
 * faultline client: hand a range of this process's memory to a faultline
 * handler (`faultline serve`, or bench/serve-floor), which then fills its
 * pages on first touch from its backend. The protocol is in clients/README.md.
 *
 * Functions return -1 with errno set on failure; faultline_last_error() then
 * names the failed step. Handles are plain file descriptors (the connection
 * to the handler): do not close them yourself, call faultline_detach().
 * Commands on one handle must not run concurrently from several threads
 * (replies are matched to requests by order); distinct handles are
 * independent.
 */
#ifndef FAULTLINE_CLIENT_H
#define FAULTLINE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ask the handler to track writes and write dirty pages back on flush. */
#define FAULTLINE_WRITE_BACK 1u

/*
 * Registers [addr, addr+size) (already mapped by the caller, private
 * anonymous memory; pages already present never fault, so they keep their
 * contents) with a new userfaultfd, passes it to the
 * handler listening on socket_path together with the range and `offset` (the
 * byte offset in the backend object that addr corresponds to), and waits for
 * the handler's answer (30 s, or FAULTLINE_ATTACH_TIMEOUT_MS).
 *
 * addr and size must be multiples of the system page size. On failure the
 * range is left unregistered (plain anonymous memory again) and no descriptor
 * is leaked. errno: EINVAL (arguments, including a socket path longer than
 * sun_path allows), the errno of the failing system call, EREMOTEIO (the
 * handler refused: see faultline_last_error()), ETIMEDOUT (no answer in
 * time), ECONNRESET (the handler hung up before answering), EPROTO (an answer
 * that is not the protocol's).
 */
int faultline_attach(const char *socket_path, void *addr, size_t size, uint64_t offset);

/* faultline_attach with flags: 0 or FAULTLINE_WRITE_BACK. Unknown bits: EINVAL. */
int faultline_attach_ex(const char *socket_path, void *addr, size_t size, uint64_t offset, unsigned flags);

/*
 * Asks the handler to write every dirty page of the range to the backend and
 * waits for its answer (no time limit unless FAULTLINE_COMMAND_TIMEOUT_MS is
 * set: a large flush to a remote backend can take long). Returns 0, or -1
 * with errno EREMOTEIO when the handler reports a failure.
 */
int faultline_flush(int handle);

/*
 * Ends the attachment: the handler flushes, stops serving the range, releases
 * its userfaultfd, answers, and the client closes the connection. The handle
 * is closed even when -1 is returned.
 *
 * The kernel drops the range's registration when the handler releases the
 * last reference to the userfaultfd, so afterwards the range is plain
 * anonymous memory: pages that were filled keep their contents, pages never
 * touched read as zeros. Detach is for the end of use; unmap the range or
 * treat its contents as final. (The client cannot unregister the range
 * itself: by protocol it gave its only userfaultfd descriptor to the handler.)
 */
int faultline_detach(int handle);

/* The last failure of a faultline_* call on this thread ("" if none). */
const char *faultline_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
