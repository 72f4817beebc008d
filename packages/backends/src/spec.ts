/** Helpers for reading a backend spec's options with errors that name them. */
import { FaultlineError } from '@faultline/contract'

export function optionError(backend: string, option: string, message: string): FaultlineError {
  return new FaultlineError('ERR_INVALID_OPTION', `faultline: ${backend} backend option \`${option}\` ${message}`, { option: `backend.${option}` })
}

export function checkKnownOptions(backend: string, spec: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(spec)) {
    if (key !== 'type' && !known.includes(key)) {
      throw optionError(backend, key, `is not an option of the ${backend} backend (known: ${known.join(', ')})`)
    }
  }
}

/** Groups sorted page indexes into runs of consecutive pages: [first, count] pairs. */
export function consecutiveRuns(indexes: readonly number[]): Array<[number, number, number]> {
  // [first page, count, position of first in `indexes`]
  const runs: Array<[number, number, number]> = []
  for (let i = 0; i < indexes.length; i++) {
    const p = indexes[i]!
    const last = runs[runs.length - 1]
    if (last !== undefined && p === last[0] + last[1] && i === last[2] + last[1]) last[1]++
    else runs.push([p, 1, i])
  }
  return runs
}
