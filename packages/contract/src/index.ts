/**
 * @faultline/contract: what a page store must do for a region, and the one
 * error class every faultline package raises. Both @faultline/core and the
 * backends depend on this package and on nothing of each other's contract,
 * so the package graph stays a tree.
 */
export type { Backend, BackendContext, BackendInfo, BackendModule, BackendSpec, PageWrite } from './contract.js'
export { FaultlineError, type FaultlineErrorCode } from './errors.js'
