/**
 * globalSetup of the long stress (test/stress/vitest.config.ts): the one
 * standalone redis-server it talks to, started and stopped as the suite's
 * shared one is (test/setup/redis.ts), without the cluster and S3 servers.
 */
import type { TestProject } from 'vitest/node'
import { RedisServer } from '../helpers/redis-server.js'

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await RedisServer.start()
  project.provide('redisUrl', server.url)
  return () => server.stop()
}
