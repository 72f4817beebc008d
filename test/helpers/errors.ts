import { expect } from 'vitest'
import { FaultlineError } from '@faultline/core'

/** Awaits a promise that must reject with a FaultlineError, and returns that error. */
export async function rejection(p: Promise<unknown>): Promise<FaultlineError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(FaultlineError)
  return err as FaultlineError
}
