// A Helia node (the IPFS project's JavaScript implementation) for the tests, offline over a MemoryBlockstore.
//
//   node helia.mjs add 0|1 PATH          -> {"root": CID, "files": {"rel/path": CID}}: @helia/unixfs with Kubo's
//                                            parameters (256 KiB chunks, 174 links, raw leaves for v1)
//   node helia.mjs import CAR OUT        -> {"roots": [CID]}: @helia/car imports the CAR, @helia/unixfs writes
//                                            every file under the root into OUT
//   node helia.mjs serve 0|1 PATH [--alter] [--raw-only]
//                                        -> adds PATH as `add` does, then serves it as a trustless gateway
//                                            (`GET /ipfs/{cid}`: `format=raw` from the blockstore, `format=car`
//                                            from @helia/car) and prints one line {"url", "root", "files",
//                                            "altered"}; --alter stores one leaf of the largest file with a
//                                            flipped byte (a lying gateway); --raw-only answers 406 to CARs;
//                                            --pad N appends N unrelated 256 KiB raw blocks (valid CIDs) to
//                                            every CAR (a gateway wasting the client's disk)
//   node helia.mjs rpc                   -> the Kubo RPC routes a pinning client needs, over Helia:
//                                            `POST /api/v0/dag/import?pin-roots=true` (multipart CAR: @helia/car
//                                            import, then Helia pins each root) answering Kubo's ndjson, and
//                                            `POST /api/v0/pin/ls?arg=CID`; it serves `/ipfs/{cid}` too
// The servers run until stdin closes.
import './node20.mjs'
import { createReadStream, mkdirSync, readdirSync, readFileSync, statSync, createWriteStream } from 'node:fs'
import { createServer } from 'node:http'
import { dirname, join, relative, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createHeliaLight } from 'helia'
import { unixfs } from '@helia/unixfs'
import { car } from '@helia/car'
import { CarReader } from '@ipld/car'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { randomBytes } from 'node:crypto'

const RAW = 'application/vnd.ipld.raw'
const CAR = 'application/vnd.ipld.car'

async function node () {
  const blockstore = new MemoryBlockstore()
  const helia = createHeliaLight({ blockstore, routers: [], blockBrokers: [] })
  await helia.start()
  return { helia, blockstore }
}

function kuboOptions (cidVersion) {
  return {
    cidVersion,
    rawLeaves: cidVersion === 1,
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 }),
    reduceSingleLeafToSelf: true,
    leafType: 'file',
    shardSplitThresholdBytes: 262144,
    shardSplitStrategy: 'links-bytes'
  }
}

function * walk (dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) yield * walk(p)
    else yield p
  }
}

// Add a file (addByteStream: not wrapped in a directory) or a directory (addAll, wrapped) as Kubo would.
async function add (helia, cidVersion, path) {
  const fs = unixfs(helia)
  const options = kuboOptions(cidVersion)
  const files = {}
  if (!statSync(path).isDirectory()) {
    const root = await fs.addByteStream(createReadStream(path, { highWaterMark: 4 << 20 }), options)
    return { root: root.toString(), files, sizes: { '': statSync(path).size } }
  }
  const source = [...walk(path)].map(p => ({
    path: relative(path, p).split(sep).join('/'),
    content: createReadStream(p, { highWaterMark: 4 << 20 })
  }))
  let root = null
  const sizes = {}
  for await (const entry of fs.addAll(source, { ...options, wrapWithDirectory: true })) {
    if (entry.path === '') root = entry.cid.toString()
    else if (entry.unixfs === undefined || entry.unixfs.type === 'file' || entry.unixfs.type === 'raw') {
      files[entry.path] = entry.cid.toString()
      sizes[entry.path] = Number(entry.size)
    }
  }
  return { root, files, sizes }
}

// A block's bytes (blockstores yield a block in parts).
async function blockBytes (blockstore, cid) {
  const parts = []
  for await (const part of blockstore.get(cid)) parts.push(part)
  return Buffer.concat(parts)
}

// Replace the first leaf of the largest file with the same bytes but one flipped: a block that no longer
// hashes to its CID, as a lying or corrupted gateway would send it.
async function alter (helia, blockstore, added) {
  const largest = Object.entries(added.sizes).sort((a, b) => b[1] - a[1])[0][0]
  let cid = CID.parse(largest === '' ? added.root : added.files[largest])
  while (true) {
    if (cid.code === 0x55) break
    const block = await blockBytes(blockstore, cid)
    const node = (await helia.getCodec(cid.code)).decode(block)
    if (node.Links.length === 0) break
    cid = node.Links[0].Hash
  }
  const block = Uint8Array.from(await blockBytes(blockstore, cid))
  block[block.length - 1] ^= 0xff
  await blockstore.put(cid, block)
  return cid.toString()
}

function varint (n) {
  const out = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

// N CAR sections of random 256 KiB raw blocks, each under its true CIDv1: authentic blocks of no DAG asked for.
async function padding (count) {
  const sections = []
  for (let i = 0; i < count; i++) {
    const block = randomBytes(262144)
    const cid = CID.createV1(0x55, await sha256.digest(block))
    sections.push(varint(cid.bytes.length + block.length), cid.bytes, block)
  }
  return sections
}

function gateway (helia, blockstore, { rawOnly = false, pad = [] } = {}) {
  const exporter = car(helia)
  return async (req, res, url) => {
    const match = url.pathname.match(/^\/ipfs\/([^/]+)$/)
    if (match === null) return false
    const accept = req.headers.accept ?? ''
    const format = url.searchParams.get('format') ?? (accept.includes(CAR) ? 'car' : accept.includes(RAW) ? 'raw' : null)
    let cid
    try {
      cid = CID.parse(match[1])
    } catch {
      res.writeHead(400).end('bad CID')
      return true
    }
    if (!(await blockstore.has(cid))) {
      res.writeHead(404).end('not found')
      return true
    }
    if (format === 'raw') {
      const block = await blockBytes(blockstore, cid)
      res.writeHead(200, { 'Content-Type': RAW, 'Content-Length': block.length }).end(block)
    } else if (format === 'car' && !rawOnly) {
      res.writeHead(200, { 'Content-Type': `${CAR}; version=1; order=dfs; dups=n` })
      for await (const chunk of exporter.export(cid, { offline: true })) res.write(chunk)
      for (const part of pad) res.write(part)
      res.end()
    } else {
      res.writeHead(406).end('ask for format=raw or format=car')
    }
    return true
  }
}

function listen (handle, extra) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost')
    handle(req, res, url).then(done => {
      if (!done) res.writeHead(404).end('no such route')
    }, err => {
      if (!res.headersSent) res.writeHead(500)
      res.end(String(err))
    })
  })
  server.listen(0, '127.0.0.1', () => {
    const url = `http://127.0.0.1:${server.address().port}`
    process.stdout.write(JSON.stringify({ url, ...extra }) + '\n')
  })
  process.stdin.resume()
  process.stdin.on('end', () => process.exit(0))
}

async function importCar (helia, bytes) {
  const reader = await CarReader.fromBytes(bytes)
  await car(helia).import(reader)
  return (await reader.getRoots()).map(r => r.toString())
}

// Write the file or directory `cid` at `target` (a file root: OUT/CID), reading only the local blockstore.
async function writeOut (helia, cid, target) {
  const fs = unixfs(helia)
  const stat = await fs.stat(cid, { offline: true })
  if (stat.type === 'directory') {
    for await (const entry of fs.ls(cid, { offline: true })) await writeOut(helia, entry.cid, join(target, entry.name))
    return
  }
  mkdirSync(dirname(target), { recursive: true })
  await pipeline(fs.cat(cid, { offline: true }), createWriteStream(target))
}

const [mode, ...args] = process.argv.slice(2)
const { helia, blockstore } = await node()
if (mode === 'add') {
  const added = await add(helia, Number(args[0]), args[1])
  process.stdout.write(JSON.stringify({ root: added.root, files: added.files }))
  await helia.stop()
} else if (mode === 'import') {
  const roots = await importCar(helia, readFileSync(args[0]))
  for (const root of roots) {
    const cid = CID.parse(root)
    const stat = await unixfs(helia).stat(cid, { offline: true })
    await writeOut(helia, cid, stat.type === 'directory' ? args[1] : join(args[1], root))
  }
  process.stdout.write(JSON.stringify({ roots }))
  await helia.stop()
} else if (mode === 'serve') {
  const added = await add(helia, Number(args[0]), args[1])
  const altered = args.includes('--alter') ? await alter(helia, blockstore, added) : null
  const pad = args.includes('--pad') ? await padding(Number(args[args.indexOf('--pad') + 1])) : []
  listen(gateway(helia, blockstore, { rawOnly: args.includes('--raw-only'), pad }), { root: added.root, files: added.files, altered })
} else if (mode === 'rpc') {
  const serveGateway = gateway(helia, blockstore)
  listen(async (req, res, url) => {
    if (req.method === 'POST' && url.pathname === '/api/v0/dag/import') {
      const form = await new Request(url, { method: 'POST', headers: req.headers, body: req, duplex: 'half' }).formData()
      const roots = await importCar(helia, new Uint8Array(await form.get('file').arrayBuffer()))
      const lines = []
      for (const root of roots) {
        let error = ''
        if (url.searchParams.get('pin-roots') === 'true') {
          try {
            for await (const _ of helia.pins.add(CID.parse(root), { signal: AbortSignal.timeout(30_000) })) { /* walk */ }
          } catch (err) {
            error = String(err.message ?? err)
          }
        }
        lines.push(JSON.stringify({ Root: { Cid: { '/': root }, PinErrorMsg: error } }))
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(lines.join('\n') + '\n')
      return true
    }
    if (req.method === 'POST' && url.pathname === '/api/v0/pin/ls') {
      const cid = CID.parse(url.searchParams.get('arg'))
      if (!(await helia.pins.isPinned(cid))) {
        res.writeHead(500, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ Message: `path '${cid}' is not pinned`, Code: 0, Type: 'error' }))
        return true
      }
      res.writeHead(200, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ Keys: { [cid.toString()]: { Type: 'recursive' } } }))
      return true
    }
    return serveGateway(req, res, url)
  }, {})
} else {
  process.stderr.write(`unknown mode ${mode}\n`)
  process.exit(2)
}
