// The control API's identity ops: making the data dir (a node key pair and a `default`
// sharing key), the node's public key, and the sharing keys.
import { DataDir, UserError } from '../../datadir.js'
import { KEY_BYTES, encodeKey } from '../../crypto.js'
import type { OpFn } from '../context.js'

export const create: OpFn<'create'> = async (ctx) => {
  const dir = DataDir.create(ctx.root)
  return { dataDir: dir.root, publicKey: encodeKey(dir.publicKey) }
}

export const pubkey: OpFn<'debug.pubkey'> = async (ctx) => ({ publicKey: encodeKey(ctx.dir.publicKey) })

export const sharingAdd: OpFn<'sharing.add'> = async (ctx, a) => {
  if (ctx.dir.listSharingKeys().includes(a.name)) throw new UserError(`sharing key "${a.name}" already exists`)
  const key = Buffer.from(a.key, 'base64')
  // Round trip: base64 decoding skips what is not base64 rather than failing.
  if (key.toString('base64') !== a.key) throw new UserError('sharing key: "key" must be base64')
  if (key.length !== KEY_BYTES) throw new UserError(`sharing key must be exactly ${KEY_BYTES} bytes, got ${key.length > KEY_BYTES ? 'more' : key.length}: e.g. dd if=/dev/urandom bs=32 count=1`)
  ctx.dir.addSharingKey(a.name, key)
  return { name: a.name }
}

export const sharingList: OpFn<'sharing.list'> = async (ctx) => ({ names: ctx.dir.listSharingKeys() })
