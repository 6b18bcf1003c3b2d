// @helia/verified-fetch (the IPFS project's trustless-gateway client) fetching files from one gateway.
//   node verified_fetch.mjs GATEWAY_URL OUT_DIR CID [PATH...]  ->  writes OUT_DIR/PATH (or OUT_DIR/file for none)
// The gateway is Helia's only router, as an ordinary router (with only the fallback gateway router, Helia's
// provider search never ends), and the trustless-gateway block broker fetches and verifies each block.
import './node20.mjs'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createHeliaLight } from 'helia'
import { httpGatewayRouting } from '@helia/routers'
import { trustlessGatewayBlockBroker } from '@helia/trustless-gateway-client'
import { createVerifiedFetchWithHelia } from '@helia/verified-fetch'

const [gateway, out, cid, ...paths] = process.argv.slice(2)
const helia = createHeliaLight({
  routers: [httpGatewayRouting({ gateways: [gateway], shuffle: false })],
  blockBrokers: [trustlessGatewayBlockBroker({ allowInsecure: true, allowLocal: true })]
})
await helia.start()
const fetch = await createVerifiedFetchWithHelia(helia)
let failed = false
for (const path of paths.length ? paths : ['']) {
  const url = `ipfs://${cid}/${path.split('/').map(encodeURIComponent).join('/')}`
  const response = await fetch(url, { signal: AbortSignal.timeout(60_000) })
  if (response.status !== 200) {
    process.stderr.write(`${url}: ${response.status} ${await response.text()}\n`)
    failed = true
    continue
  }
  const target = join(out, path || 'file')
  mkdirSync(dirname(target), { recursive: true })
  writeFileSync(target, new Uint8Array(await response.arrayBuffer()))
}
await fetch.stop()
await helia.stop()
process.exit(failed ? 1 : 0)
