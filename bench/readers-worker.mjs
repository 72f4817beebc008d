// One reader thread of the "N reader threads" rows: attaches the region from
// its handle, waits for the signal, touches its pages, reports how long.
import { parentPort, workerData } from 'node:worker_threads'
import { attachRegion } from '@faultline/core'

const { handle, offsets } = workerData
const region = attachRegion(handle)
const view = region.view()
parentPort.postMessage('ready')
parentPort.once('message', () => {
  let sink = 0
  const t0 = performance.now()
  for (const o of offsets) sink += view[o]
  parentPort.postMessage({ ms: performance.now() - t0, sink })
  region.detach()
})
