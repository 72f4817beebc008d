/** How the backend moves pages: batched gets and sets of whole values, standalone or Cluster. */

export interface PageIo {
  /** Values of `keys`, in order; null where a key does not exist. */
  get(keys: readonly string[]): Promise<Array<Buffer | null>>
  /** Stores every entry; rejects if any may not have been stored. */
  set(entries: ReadonlyArray<readonly [key: string, value: Buffer]>): Promise<void>
  /** Waits until `replicas` replicas of every server written to since the last call hold those writes (Redis WAIT). */
  waitReplicas(replicas: number, timeoutMs: number): Promise<void>
}

/** WAIT on one connection: it covers every write sent before it on that connection. */
export async function waitOn(connection: { call(...args: Array<string | number>): Promise<unknown> }, where: string, replicas: number, timeoutMs: number): Promise<void> {
  const acked = Number(await connection.call('WAIT', replicas, timeoutMs))
  if (acked < replicas) throw new Error(`only ${acked} of ${replicas} replica(s) of ${where} confirmed the writes within ${timeoutMs} ms`)
}

/**
 * Waits for every promise (so nothing is still in flight when the caller
 * hears back: a failed batch must not race its own retry), then resolves
 * with the values or rejects with the first error.
 */
export async function settleAll<T>(promises: ReadonlyArray<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(promises)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value)
}

/** Cuts `items` into runs of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * `work`'s value, or null if it rejects or has not settled within `ms` (a
 * late settlement is ignored): for steps that must not hold the caller up.
 */
export async function settleWithin<T>(work: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms)
  })
  try {
    return await Promise.race([work.catch(() => null), expired])
  } finally {
    clearTimeout(timer)
  }
}
