import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'

/** A temporary directory (under `parent`, default the OS's) removed after the file's tests. */
export function tempDir(parent: string = tmpdir()): string {
  const dir = mkdtempSync(join(parent, 'faultline-test-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}
