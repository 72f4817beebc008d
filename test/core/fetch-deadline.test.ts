// The fetch deadline alone (fetcher.ts settleWithin): every read in flight
// on one timer, each still failed at its own deadline, in any order.
import { describe, expect, it } from 'vitest'
import { settleWithin } from '../../packages/core/src/pager/fetcher.js'

const never = <T>(): Promise<T> => new Promise<T>(() => undefined)
/** The rejection, or an error saying it resolved; `at` gets the time it came. */
const failure = (p: Promise<unknown>, at?: (t: number) => void): Promise<Error> =>
  p.then(
    () => new Error('it resolved'),
    (e: Error) => (at?.(performance.now()), e),
  )
const after = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms))

describe('settleWithin', () => {
  it('passes a value or an error through when the promise settles in time', async () => {
    await expect(settleWithin(after(5, 'v'), 1000, 'b')).resolves.toBe('v')
    await expect(settleWithin(Promise.reject(new Error('boom')), 1000, 'b')).rejects.toThrow('boom')
    await expect(settleWithin(after(5, 'inf'), Infinity, 'b')).resolves.toBe('inf')
  })

  it('fails each read that never settles at its own deadline, a shorter one added later first', async () => {
    const t0 = performance.now()
    const times: Record<string, number> = {}
    const long = failure(settleWithin(never(), 400, 'slow'), (t) => (times.long = t - t0))
    const short = failure(settleWithin(never(), 100, 'quick'), (t) => (times.short = t - t0))
    const settled = settleWithin(after(20, 'ok'), 50, 'fine')
    await expect(settled).resolves.toBe('ok')
    expect((await short).message).toBe('quick did not answer within 100 ms')
    expect((await long).message).toBe('slow did not answer within 400 ms')
    expect(times.short).toBeGreaterThanOrEqual(99)
    expect(times.short).toBeLessThan(times.long!)
    expect(times.long).toBeGreaterThanOrEqual(399)
  })

  it('a deadline whose read settled arms nothing that fails a later one early', async () => {
    await settleWithin(after(1, 'a'), 30, 'first') // its deadline stays armed on the timer, and fires with nothing due
    const t0 = performance.now()
    const late = failure(settleWithin(never(), 120, 'second'))
    expect((await late).message).toMatch(/second did not answer within 120 ms/)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(119)
  })
})
