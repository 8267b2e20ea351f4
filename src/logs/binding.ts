// Block 0 of a writer log: binds the log (its hypercore key) to one volume and one node. The
// node signs it with its identity key, so a peer can tell whose log it replicates and cannot
// be handed some other volume's log under this volume's name.
import { CONTEXT, SIGNATURE_BYTES, encodeKey, equal, sign, verify, type KeyPair } from '../crypto.js'
import { ByteReader } from './bytes.js'
import { LogBindingError, LogFormatError } from './errors.js'

export const BINDING_VERSION = 1
export const BINDING_BYTES = 1 + 32 + 32 + SIGNATURE_BYTES // 129

export interface Binding {
  volumeId: Buffer
  node: Buffer
  signature: Buffer
}

/** What the node signs: CONTEXT.logBinding || 0x00 || volume id || log key. */
export function bindingMessage(volumeId: Buffer, logKey: Buffer): Buffer {
  return Buffer.concat([Buffer.from(CONTEXT.logBinding, 'utf8'), Buffer.from([0]), volumeId, logKey])
}

export function encodeBinding(volumeId: Buffer, logKey: Buffer, identity: KeyPair): Buffer {
  if (volumeId.length !== 32) throw new LogFormatError(`volume id must be 32 bytes, got ${volumeId.length}`)
  if (logKey.length !== 32) throw new LogFormatError(`log key must be 32 bytes, got ${logKey.length}`)
  const signature = sign(bindingMessage(volumeId, logKey), identity.secretKey)
  return Buffer.concat([Buffer.from([BINDING_VERSION]), volumeId, identity.publicKey, signature])
}

/** Parses block 0 without judging it; LogFormatError on a shape or version we don't know. */
export function decodeBinding(block: Uint8Array): Binding {
  const r = new ByteReader(block, 'log binding')
  const version = r.u8('version')
  if (version !== BINDING_VERSION) throw new LogFormatError(`log binding: unknown version ${version}`)
  if (block.byteLength !== BINDING_BYTES) {
    throw new LogFormatError(`log binding: ${block.byteLength} bytes, expected ${BINDING_BYTES}`)
  }
  const volumeId = Buffer.from(r.raw(32, 'volume id'))
  const node = Buffer.from(r.raw(32, 'node key'))
  const signature = Buffer.from(r.raw(SIGNATURE_BYTES, 'signature'))
  r.end()
  return { volumeId, node, signature }
}

/**
 * Checks block 0 of the log `logKey` against the volume the caller expects; returns the node
 * key it names. Throws LogBindingError saying what is wrong.
 */
export function checkBinding(block: Uint8Array | null, logKey: Buffer, volumeId: Buffer): Buffer {
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
  if (!verify(bindingMessage(volumeId, logKey), binding.signature, binding.node)) {
    throw new LogBindingError(`${who}: binding signature does not verify for the node key it names`)
  }
  return binding.node
}
