/** s3rver with conditional PUTs, through test/fixtures/conditional-proxy.mjs in a child process. */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { inject } from 'vitest'

const fixture = fileURLToPath(new URL('../fixtures/conditional-proxy.mjs', import.meta.url))

export interface ConditionalProxy {
  endpoint: string
  /** How many conditional PUTs it has refused with 412 so far. */
  refused(): Promise<number>
  close(): Promise<void>
}

export async function startConditionalProxy(): Promise<ConditionalProxy> {
  const args = { endpoint: inject('s3Endpoint'), accessKeyId: inject('s3AccessKeyId'), secretAccessKey: inject('s3SecretAccessKey') }
  const child = spawn(process.execPath, [fixture, JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async (): Promise<string> => {
    const line = await lines.next()
    if (line.done === true) throw new Error('the conditional proxy exited')
    return line.value as string
  }
  const port = await next()
  return {
    endpoint: `http://127.0.0.1:${port}`,
    refused: async () => {
      child.stdin.write('\n')
      return Number(await next())
    },
    close: async () => {
      child.stdin.end()
      await new Promise((r) => child.once('exit', r))
    },
  }
}
