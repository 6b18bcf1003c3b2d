// The independent implementation the CID tests compare with: the JS `ipfs-unixfs-importer`, configured as Kubo.
//   node unixfs_cids.mjs 0|1 PATH   ->  {"root": CID, "files": {"rel/path": CID}}
// Version 0 is Kubo's `ipfs add` (unixfs-v0-2015): CIDv0, dag-pb leaves. Version 1 is `ipfs add --cid-version=1`:
// raw leaves. Every option that changes a CID is set explicitly rather than left to the importer's defaults.
import { createReadStream, readdirSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'

const [version, root] = process.argv.slice(2)
const cidVersion = Number(version)

function * walk (dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) yield * walk(p)
    else yield p
  }
}

const isDir = statSync(root).isDirectory()
const paths = isDir ? [...walk(root)] : [root]
const source = paths.map(p => ({
  path: isDir ? relative(root, p).split(sep).join('/') : 'file',
  content: createReadStream(p, { highWaterMark: 4 * 1024 * 1024 })
}))
const options = {
  cidVersion,
  rawLeaves: cidVersion === 1,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  reduceSingleLeafToSelf: true,
  leafType: 'file',
  shardSplitThresholdBytes: 262144,
  shardSplitStrategy: 'links-bytes',
  wrapWithDirectory: isDir
}
const out = { root: null, files: {} }
for await (const entry of importer(source, new BlackHoleBlockstore(), options)) {
  const cid = entry.cid.toString()
  if (entry.path === '' || (!isDir && entry.path === 'file')) out.root = cid
  if (entry.unixfs === undefined || entry.unixfs.type === 'file' || entry.unixfs.type === 'raw') {
    if (isDir) out.files[entry.path] = cid
  }
}
process.stdout.write(JSON.stringify(out))
