/** The first message of a `faultline serve` peer, decoded: Firecracker's form, ours, and what is refused. */
import { describe, expect, it } from 'vitest'
import { decodeCommand, decodeHello, servedPageSize } from '../../packages/core/src/serve/handshake.js'

const mapping = { base_host_virt_addr: 0x7f0000000000, size: 1 << 20, offset: 4096, page_size: 4096 }

describe('decodeHello', () => {
  it("reads Firecracker's GuestRegionUffdMapping list, with page_size or the deprecated page_size_kib (bytes)", () => {
    const expected = { kind: 'attach', writeBack: false, mappings: [{ address: 0x7f0000000000, size: 1 << 20, offset: 4096, pageSize: 4096 }] }
    expect(decodeHello(JSON.stringify([mapping]))).toEqual(expected)
    expect(decodeHello(JSON.stringify([{ ...mapping, page_size: undefined, page_size_kib: 4096 }]))).toEqual(expected)
    // The oldest Firecracker sent no page size: the host's.
    expect(decodeHello(JSON.stringify([{ ...mapping, page_size: undefined }]))).toEqual(expected)
  })

  it('reads the object form with write_back, and the status command', () => {
    expect(decodeHello(JSON.stringify({ mappings: [mapping], write_back: true }))).toMatchObject({ kind: 'attach', writeBack: true })
    expect(decodeHello('{"command":"status"}')).toEqual({ kind: 'status' })
  })

  it('waits for the rest of a message that arrived in pieces, cut anywhere', () => {
    for (const text of [JSON.stringify([mapping]), JSON.stringify({ mappings: [mapping], write_back: true })]) {
      for (let cut = 1; cut < text.length; cut++) expect(decodeHello(text.slice(0, cut)), text.slice(0, cut)).toBeUndefined()
      expect(decodeHello(text)).toBeDefined()
    }
  })

  it('refuses what can never be served, naming the field', () => {
    const refused = (text: string): string => {
      try {
        decodeHello(text)
      } catch (err) {
        expect((err as { code: string }).code).toBe('ERR_PEER')
        return (err as Error).message
      }
      throw new Error(`accepted ${text}`)
    }
    expect(refused('nope')).toMatch(/not JSON/)
    expect(refused('[]')).toMatch(/empty/)
    expect(refused('42')).toMatch(/JSON array of mappings/)
    expect(refused(JSON.stringify([{ ...mapping, size: -1 }]))).toMatch(/mapping 0: `size` must be a whole number ≥ 1 \(got -1\)/)
    expect(refused(JSON.stringify([{ ...mapping, page_size: 3000 }]))).toMatch(/power of two/)
    expect(refused(JSON.stringify({ mappings: [mapping], write_back: 'yes' }))).toMatch(/write_back/)
    expect(refused('{"command":"reboot"}')).toMatch(/unknown command "reboot"/)
  })
})

describe('servedPageSize', () => {
  const m = { address: 0x7f0000000000, size: 1 << 20, offset: 0, pageSize: 4096 }
  it('serves in the preferred page size where the range is aligned to it, else in the system page size', () => {
    expect(servedPageSize(m, 65536, 4096)).toBe(65536)
    expect(servedPageSize({ ...m, offset: 4096 }, 65536, 4096)).toBe(4096)
  })
  it('refuses huge-page and misaligned ranges with a message', () => {
    expect(() => servedPageSize({ ...m, pageSize: 2 << 20 }, 65536, 4096)).toThrow(/2097152-byte pages are not served yet/)
    expect(() => servedPageSize({ ...m, size: 1000 }, 65536, 4096)).toThrow(/not aligned/)
  })
})

describe('decodeCommand', () => {
  it('knows flush and detach, and names anything else', () => {
    expect(decodeCommand('{"command":"flush"}')).toBe('flush')
    expect(decodeCommand('{"command":"detach"}')).toBe('detach')
    expect(() => decodeCommand('{"command":"dance"}')).toThrow(/unknown command "dance"/)
    expect(() => decodeCommand('flush')).toThrow(/not JSON/)
  })
})
