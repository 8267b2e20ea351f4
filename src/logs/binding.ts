// Block 0 of a writer log: binds the log (its hypercore key) to one volume and one node. The
// node signs it with its identity key, so a peer can tell whose log it replicates and cannot
// be handed some other volume's log under this volume's name.
//
// Version 2 also carries the volume's genesis (creator node key, nonce) from which the id of
// a volume created since is derived: whoever holds any v2-bound log of the volume knows the
// volume's root node, without decrypting anything. Layouts: spec/oplog.md.
import { CONTEXT, SIGNATURE_BYTES, encodeKey, equal, hash, sign, verify, type KeyPair } from '../crypto.js'
import { ByteReader } from './bytes.js'
import { LogBindingError, LogFormatError } from './errors.js'

export const BINDING_VERSION = 1
export const BINDING_V2 = 2
export const BINDING_BYTES = 1 + 32 + 32 + SIGNATURE_BYTES // 129
export const BINDING_V2_BYTES = 1 + 32 + 32 + 32 + 32 + SIGNATURE_BYTES // 193
export const GENESIS_NONCE_BYTES = 32

/** What a volume id is derived from (volumes created with binding v2). */
export interface Genesis {
  /** The creating node's public key: the volume's root node. */
  node: Buffer
  nonce: Buffer
}

export interface Binding {
  version: 1 | 2
  volumeId: Buffer
  node: Buffer
  signature: Buffer
  /** Version 2 only: the genesis the volume id is derived from (checked by checkBinding). */
  genesis: Genesis | null
}

/** The id of a volume created from this genesis: BLAKE2b-256(CONTEXT.volumeId || 0x00 || node || nonce). */
export function volumeIdOf(genesis: Genesis): Buffer {
  if (genesis.node.length !== 32 || genesis.nonce.length !== GENESIS_NONCE_BYTES) throw new LogFormatError('genesis: node key and nonce must be 32 bytes each')
  return hash([Buffer.from(CONTEXT.volumeId, 'utf8'), Buffer.from([0]), genesis.node, genesis.nonce])
}

/** What the node signs: v1 CONTEXT.logBinding || 0x00 || volume id || log key; v2 adds genesis node || nonce (CONTEXT.logBindingV2). */
export function bindingMessage(volumeId: Buffer, logKey: Buffer, genesis: Genesis | null = null): Buffer {
  if (genesis === null) return Buffer.concat([Buffer.from(CONTEXT.logBinding, 'utf8'), Buffer.from([0]), volumeId, logKey])
  return Buffer.concat([Buffer.from(CONTEXT.logBindingV2, 'utf8'), Buffer.from([0]), volumeId, logKey, genesis.node, genesis.nonce])
}

/** Block 0 for a log: version 2 when the volume's genesis is given, else version 1 (volumes with a random id). */
export function encodeBinding(volumeId: Buffer, logKey: Buffer, identity: KeyPair, genesis: Genesis | null = null): Buffer {
  if (volumeId.length !== 32) throw new LogFormatError(`volume id must be 32 bytes, got ${volumeId.length}`)
  if (logKey.length !== 32) throw new LogFormatError(`log key must be 32 bytes, got ${logKey.length}`)
  if (genesis !== null && !equal(volumeIdOf(genesis), volumeId)) throw new LogFormatError('genesis does not hash to the volume id')
  const signature = sign(bindingMessage(volumeId, logKey, genesis), identity.secretKey)
  if (genesis === null) return Buffer.concat([Buffer.from([BINDING_VERSION]), volumeId, identity.publicKey, signature])
  return Buffer.concat([Buffer.from([BINDING_V2]), volumeId, identity.publicKey, genesis.node, genesis.nonce, signature])
}

/** Parses block 0 without judging it; LogFormatError on a shape or version we don't know. */
export function decodeBinding(block: Uint8Array): Binding {
  const r = new ByteReader(block, 'log binding')
  const version = r.u8('version')
  if (version !== BINDING_VERSION && version !== BINDING_V2) throw new LogFormatError(`log binding: unknown version ${version}`)
  const expected = version === BINDING_VERSION ? BINDING_BYTES : BINDING_V2_BYTES
  if (block.byteLength !== expected) {
    throw new LogFormatError(`log binding: ${block.byteLength} bytes, expected ${expected} for version ${version}`)
  }
  const volumeId = Buffer.from(r.raw(32, 'volume id'))
  const node = Buffer.from(r.raw(32, 'node key'))
  let genesis: Genesis | null = null
  if (version === BINDING_V2) genesis = { node: Buffer.from(r.raw(32, 'genesis node key')), nonce: Buffer.from(r.raw(GENESIS_NONCE_BYTES, 'genesis nonce')) }
  const signature = Buffer.from(r.raw(SIGNATURE_BYTES, 'signature'))
  r.end()
  return { version, volumeId, node, signature, genesis }
}

/**
 * Checks block 0 of the log `logKey` against the volume the caller expects; returns the
 * binding. Throws LogBindingError saying what is wrong.
 */
export function checkBindingFull(block: Uint8Array | null, logKey: Buffer, volumeId: Buffer): Binding {
  const who = `log ${encodeKey(logKey)}`
  if (block === null) throw new LogBindingError(`${who}: binding block (block 0) is missing`)
  let binding: Binding
  try {
    binding = decodeBinding(block)
  } catch (err) {
    throw new LogBindingError(`${who}: ${(err as Error).message}`)
  }
  if (!equal(binding.volumeId, volumeId)) {
    throw new LogBindingError(`${who}: bound to volume ${binding.volumeId.toString('hex')}, not ${volumeId.toString('hex')}`)
  }
  if (binding.genesis !== null && !equal(volumeIdOf(binding.genesis), volumeId)) {
    throw new LogBindingError(`${who}: its genesis does not hash to the volume id`)
  }
  if (!verify(bindingMessage(volumeId, logKey, binding.genesis), binding.signature, binding.node)) {
    throw new LogBindingError(`${who}: binding signature does not verify for the node key it names`)
  }
  return binding
}

/** checkBindingFull, returning only the node key the binding names. */
export function checkBinding(block: Uint8Array | null, logKey: Buffer, volumeId: Buffer): Buffer {
  return checkBindingFull(block, logKey, volumeId).node
}
