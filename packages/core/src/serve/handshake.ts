/**
 * What a peer of `faultline serve` sends first, decoded and checked.
 *
 * The attach message is Firecracker's: a JSON array of
 * `GuestRegionUffdMapping` (`base_host_virt_addr`, `size`, `offset`,
 * `page_size` in bytes, or the older `page_size_kib`, which Firecracker also fills in bytes), with
 * the userfaultfd as SCM_RIGHTS. faultline's own client may send the object
 * form `{ "mappings": [...], "write_back": true }` to have its writes stored.
 * A connection that sends `{ "command": "status" }` and no descriptor asks
 * for the server's status.
 */
import { constants } from '@faultline/native'
import { FaultlineError } from '../errors.js'

const SYSTEM_PAGE = constants.SYSTEM_PAGE_SIZE!

/** One range of the peer's memory and where its bytes are in the backend object. */
export interface PeerMapping {
  /** Start of the range in the peer's address space. */
  address: number
  size: number
  /** Byte offset of the range in the backend object. */
  offset: number
  /** The peer's page size for the range (4096, or a huge page size). */
  pageSize: number
}

export type PeerHello =
  | { kind: 'attach'; mappings: PeerMapping[]; writeBack: boolean }
  | { kind: 'status' }

function refuse(message: string): FaultlineError {
  return new FaultlineError('ERR_PEER', `faultline serve: ${message}`)
}

function whole(record: Record<string, unknown>, key: string, where: string, min: number): number {
  const v = record[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw refuse(`${where}: \`${key}\` must be a whole number ≥ ${min} (got ${JSON.stringify(v) ?? 'nothing'})`)
  }
  return v
}

function decodeMapping(m: unknown, k: number): PeerMapping {
  const where = `mapping ${k}`
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw refuse(`${where} must be an object with base_host_virt_addr, size, offset and page_size`)
  const r = m as Record<string, unknown>
  // Firecracker's `page_size_kib` holds bytes despite its name (its persist.rs
  // says so and deprecates it); v1.x sends it, newer versions `page_size` too,
  // and the oldest neither (the host's page size was meant).
  const pageSize = r.page_size !== undefined ? whole(r, 'page_size', where, 1) : r.page_size_kib !== undefined ? whole(r, 'page_size_kib', where, 1) : SYSTEM_PAGE
  if ((pageSize & (pageSize - 1)) !== 0) throw refuse(`${where}: page_size must be a power of two (got ${pageSize})`)
  return { address: whole(r, 'base_host_virt_addr', where, 1), size: whole(r, 'size', where, 1), offset: whole(r, 'offset', where, 0), pageSize }
}

/**
 * Decodes the first message. Returns undefined while `text` is an
 * incomplete JSON value (the rest is still on its way); throws ERR_PEER for
 * anything that can never become a valid message.
 */
export function decodeHello(text: string): PeerHello | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    if (incomplete(text, String((err as Error).message))) return undefined
    throw refuse(`the first message is not JSON: ${(err as Error).message}`)
  }
  if (Array.isArray(value)) return { kind: 'attach', mappings: decodeMappings(value), writeBack: false }
  if (typeof value !== 'object' || value === null) throw refuse('the first message must be a JSON array of mappings (Firecracker\'s GuestRegionUffdMapping) or an object')
  const r = value as Record<string, unknown>
  if (r.command === 'status') return { kind: 'status' }
  if (r.command !== undefined) throw refuse(`unknown command ${JSON.stringify(r.command)} before attaching (only "status" is)`)
  if (!Array.isArray(r.mappings)) throw refuse('an attach object must have `mappings`, an array of GuestRegionUffdMapping')
  if (r.write_back !== undefined && typeof r.write_back !== 'boolean') throw refuse(`\`write_back\` must be true or false (got ${JSON.stringify(r.write_back)})`)
  return { kind: 'attach', mappings: decodeMappings(r.mappings), writeBack: r.write_back === true }
}

/**
 * A message cut short, rather than a wrong one: the parser ran out of text
 * (V8 says so, or names the position just past the end).
 */
function incomplete(text: string, message: string): boolean {
  if (/end of (JSON )?input|Unterminated/i.test(message)) return true
  const at = /position (\d+)/.exec(message)
  return at !== null && Number(at[1]) >= text.length
}

function decodeMappings(list: unknown[]): PeerMapping[] {
  if (list.length === 0) throw refuse('the mapping list is empty: there is nothing to serve')
  return list.map(decodeMapping)
}

/** The commands of an attached peer: one JSON object per line. */
export type PeerCommand = 'flush' | 'detach'

export function decodeCommand(line: string): PeerCommand {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (err) {
    throw refuse(`a command line is not JSON: ${(err as Error).message}`)
  }
  const command = typeof value === 'object' && value !== null ? (value as Record<string, unknown>).command : undefined
  if (command === 'flush' || command === 'detach') return command
  throw refuse(`unknown command ${JSON.stringify(command)} (an attached peer may send "flush" or "detach")`)
}

/**
 * The page size the range is served in: `preferred` when the range's
 * address, size and offset are all multiples of it, else the peer's own.
 * Huge-page ranges are refused: installing them needs hugetlb-aware copies.
 */
export function servedPageSize(m: PeerMapping, preferred: number, systemPage: number): number {
  if (m.pageSize !== systemPage) throw refuse(`ranges of ${m.pageSize}-byte pages are not served yet (only ${systemPage}-byte pages): back the peer's memory with normal pages`)
  const fits = (p: number): boolean => m.address % p === 0 && m.size % p === 0 && m.offset % p === 0
  if (fits(preferred)) return preferred
  if (fits(systemPage)) return systemPage
  throw refuse(`the range at 0x${m.address.toString(16)} (size ${m.size}, offset ${m.offset}) is not aligned to its page size ${systemPage}`)
}
