// `@faultline/core/backend`, kept for backends written against it: the
// contract itself lives in @faultline/contract.
export type { Backend, BackendContext, BackendInfo, BackendModule, BackendSpec, PageWrite } from '@faultline/contract'
export { FaultlineError, type FaultlineErrorCode } from '@faultline/contract'
