/**
 * Caps the requests a backend has in flight at its socket count, so a
 * request never waits in the agent's queue, where a connect timeout would
 * tick for a connection that has not even been attempted.
 */
export type Limiter = <T>(task: () => Promise<T>) => Promise<T>

export function createLimiter(concurrency: number): Limiter {
  let active = 0
  const waiting: Array<() => void> = []
  // A finishing task hands its slot straight to the next waiter, so a caller
  // arriving in between cannot take it too.
  const release = (): void => {
    const next = waiting.shift()
    if (next !== undefined) next()
    else active--
  }
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= concurrency) await new Promise<void>((resolve) => waiting.push(resolve))
    else active++
    try {
      return await task()
    } finally {
      release()
    }
  }
}
