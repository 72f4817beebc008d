/** SDK failures as FaultlineErrors that name the object and the operation, never credentials. */
import { FaultlineError } from '@faultline/contract'

interface SdkError {
  name?: string
  message?: string
  Code?: string
  $metadata?: { httpStatusCode?: number }
}

export function statusOf(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode
}

/**
 * NoSuchKey from GET, NotFound from HEAD (which has no body to say more): the
 * object is not there. Not NoSuchBucket, also a 404, which must surface. Only
 * with status 404: the SDK names an error after the Code in its body, and a
 * 500 or 403 whose body says NoSuchKey is a failure, not an absent page.
 */
export function isNotFound(err: unknown): boolean {
  const e = err as SdkError | undefined
  return (e?.name === 'NoSuchKey' || e?.name === 'NotFound') && statusOf(err) === 404
}

export function s3Error(name: string, operation: string, err: unknown): FaultlineError {
  const e = (err ?? {}) as SdkError
  const status = statusOf(err)
  // A HEAD error has no body, so the SDK's message is just "UnknownError".
  const message = e.message && e.message !== 'UnknownError' ? e.message : ''
  const code = e.name ?? e.Code ?? 'Error'
  let hint = ''
  if (/Region is missing/i.test(message)) hint = ' (set AWS_REGION or the backend option `region`)'
  else if (/Could not load credentials/i.test(message)) hint = ' (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the backend option `credentials`)'
  return new FaultlineError('ERR_BACKEND', `faultline: ${name}: ${operation} failed: ${code}${message ? `: ${message}` : ''}${status === undefined ? '' : ` (HTTP ${status})`}${hint}`, { cause: err })
}
