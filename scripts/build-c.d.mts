/** Absolute paths of the C artifacts built by scripts/build-c.mjs. */
export interface CArtifacts {
  /** The client library, for dlopen/ctypes. */
  lib: string
  /** test/serve/peer.c, with the client linked in statically. */
  peer: string
  /** bench/serve-floor.c, the kernel-floor handler. */
  serveFloor: string
}
/** Compiles libfaultline.so, peer and serve-floor into outDir (default build-c/ at the repo root); throws with cc's output on failure. */
export function buildC(outDir?: string): CArtifacts
