/**
 * The key layout (format 1), measured and explained in docs/backends.md:
 *
 *   <prefix>{<namespace>}:meta            region metadata (JSON)
 *   <prefix>{<namespace>}:lease           the writer's lease
 *   <prefix>{<namespace>:<g>}:<index>     page <index>, g = floor(index / 16)
 *
 * One key per page. The hash tag puts 16 consecutive pages in one cluster
 * slot, so a sequential batch is a few MGETs, while a region's groups spread
 * over every master (the tag holds the namespace, so regions do not pile
 * their first pages onto one slot). Metadata and lease share a slot so one
 * script can check both.
 */
import { parseRedisOptions, type RedisBackendOptions } from './options.js'

export const FORMAT_VERSION = 1
/** Consecutive pages that share a hash tag (a cluster slot). Part of format 1. */
export const SLOT_GROUP_PAGES = 16

export class RedisKeys {
  readonly meta: string
  readonly lease: string
  private readonly pagePrefix: string

  constructor(keyPrefix: string, namespace: string) {
    this.meta = `${keyPrefix}{${namespace}}:meta`
    this.lease = `${keyPrefix}{${namespace}}:lease`
    this.pagePrefix = `${keyPrefix}{${namespace}:`
  }

  page(index: number): string {
    return `${this.pagePrefix}${Math.floor(index / SLOT_GROUP_PAGES)}}:${index}`
  }

  /** A SCAN MATCH pattern for every page key of the namespace. */
  get pagePattern(): string {
    return `${this.pagePrefix.replace(/[*?[\]\\]/g, '\\$&')}*`
  }
}


/** The keys a spec's region uses (its namespace and prefix), for tools and tests that inspect the data with their own client. */
export function redisKeys(spec: RedisBackendOptions | { type: string; [option: string]: unknown }): RedisKeys {
  const config = parseRedisOptions(spec as unknown as Record<string, unknown>)
  return new RedisKeys(config.keyPrefix, config.namespace)
}
