export type { Backend, BackendContext, BackendInfo, BackendModule, BackendSpec, PageWrite } from './contract.js'
export { FaultlineError, type FaultlineErrorCode } from '../errors.js'
