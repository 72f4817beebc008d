/**
 * vitest globalSetup: starts the real servers the suites talk to, on
 * ephemeral loopback ports, and stops them when the run ends. Each server
 * kind lives in its own module exporting `start(provide)`, which returns a
 * stop function.
 */
import type { TestProject } from 'vitest/node'
import * as redis from './redis.js'
import * as s3http from './s3http.js'

export type Provide = TestProject['provide']

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: Array<() => Promise<void>> = []
  const provide: Provide = (key, value) => project.provide(key, value)
  try {
    stops.push(await redis.start(provide))
    stops.push(await s3http.start(provide))
  } catch (err) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined)
    throw err
  }
  return async () => {
    for (const stop of stops.reverse()) await stop().catch((e: unknown) => console.error('faultline test servers: stop failed:', e))
  }
}
