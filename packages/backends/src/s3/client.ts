/**
 * The S3 client of one backend: the SDK with its standard credential chain
 * and environment, but its sockets on this backend's own keep-alive agents
 * (host names resolved without the libuv threadpool), and timeouts and
 * retries set so that a request never hangs a fault for ever.
 */
import { isMainThread } from 'node:worker_threads'
import { S3Client } from '@aws-sdk/client-s3'
import type { Agents } from '../net/agents.js'
import type { S3Config } from './options.js'

export function createS3Client(config: S3Config, agents: Agents): S3Client {
  // Each pager thread loads the SDK afresh and would print the SDK's
  // Node-version notice once per thread; the application's own threads
  // still get it.
  if (!isMainThread) process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  return new S3Client({
    ...(config.region === undefined ? {} : { region: config.region }),
    ...(config.endpoint === undefined ? { followRegionRedirects: true } : { endpoint: config.endpoint }),
    ...(config.credentials === undefined ? {} : { credentials: { ...config.credentials } }),
    forcePathStyle: config.pathStyle,
    maxAttempts: config.maxAttempts,
    retryMode: 'standard',
    // Checksums only where S3 demands them: S3-compatible stores vary in
    // their support of flexible checksums and aws-chunked uploads.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: agents.http,
      httpsAgent: agents.https,
      connectionTimeout: config.connectTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      throwOnRequestTimeout: true,
      socketTimeout: config.requestTimeoutMs,
    },
  })
}
