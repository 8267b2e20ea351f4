// Convergent encryption of CAS objects (chunks and manifest nodes).
//
//   P     = BLAKE2b-256(plain)                       plaintext hash, held by references
//   A     = BLAKE2b-256(P, key = addressKey)         store address, all the store sees
//   K||N  = BLAKE2b-448(P, key = chunkKeyRoot)       32-byte key, 24-byte nonce
//   block = 0x01 || A || XChaCha20-Poly1305(K, N, plain, ad = 0x01 || A)
//
// Same plaintext under the same sharing key gives the same block (so it is stored once); a
// key and nonce are only ever used for one plaintext. See spec/cas.md.
import { CONTEXT, HASH_BYTES, KEY_BYTES, NONCE_BYTES, TAG_BYTES, deriveKey, equal, hash, open, seal, sealInto } from '../crypto.js'

export const BLOCK_VERSION = 1
export const BLOCK_HEADER_BYTES = 1 + HASH_BYTES

export interface CasKeys {
  /** Keys the hash from P to the store address A. */
  addressKey: Buffer
  /** Keys the derivation of each object's encryption key and nonce from P. */
  chunkKeyRoot: Buffer
}

export interface SealedObject {
  /** Plaintext hash P. */
  hash: Buffer
  /** Store address A. */
  address: Buffer
  /** What the store keeps: version, address, ciphertext and tag. */
  block: Buffer
}

export function casKeys(sharingKey: Buffer): CasKeys {
  return {
    addressKey: deriveKey(sharingKey, CONTEXT.casAddress),
    chunkKeyRoot: deriveKey(sharingKey, CONTEXT.casChunkKey)
  }
}

export function plainHash(plain: Buffer): Buffer {
  return hash(plain)
}

export function addressOf(keys: CasKeys, plainHashP: Buffer): Buffer {
  return hash(plainHashP, keys.addressKey)
}

function keyAndNonce(keys: CasKeys, plainHashP: Buffer): { key: Buffer; nonce: Buffer } {
  const material = hash(plainHashP, keys.chunkKeyRoot, KEY_BYTES + NONCE_BYTES)
  return { key: material.subarray(0, KEY_BYTES), nonce: material.subarray(KEY_BYTES) }
}

export function sealObject(keys: CasKeys, plain: Buffer): SealedObject {
  const P = plainHash(plain)
  const A = addressOf(keys, P)
  const header = Buffer.alloc(BLOCK_HEADER_BYTES)
  header[0] = BLOCK_VERSION
  A.copy(header, 1)
  const { key, nonce } = keyAndNonce(keys, P)
  return { hash: P, address: A, block: Buffer.concat([header, seal(key, nonce, plain, header)]) }
}

/** Bytes of the stored block of a plaintext of `n` bytes. */
export function blockBytes(n: number): number {
  return BLOCK_HEADER_BYTES + n + TAG_BYTES
}

/**
 * sealObject() writing the block into out[at, at + blockBytes(plain.length)) instead of a
 * buffer of its own (no copy when many blocks are packed together); returns P and A.
 */
export function sealObjectInto(keys: CasKeys, plain: Buffer, out: Buffer, at: number): { hash: Buffer; address: Buffer } {
  const P = plainHash(plain)
  const A = addressOf(keys, P)
  const header = out.subarray(at, at + BLOCK_HEADER_BYTES)
  header[0] = BLOCK_VERSION
  A.copy(header, 1)
  const { key, nonce } = keyAndNonce(keys, P)
  sealInto(out.subarray(at + BLOCK_HEADER_BYTES, at + blockBytes(plain.length)), key, nonce, plain, header)
  return { hash: P, address: A }
}

/**
 * Decrypts and verifies a stored block against the plaintext hash P the reference holds.
 * Throws an Error whose message says what failed; the caller names the file and chunk.
 */
export function openObject(keys: CasKeys, plainHashP: Buffer, block: Buffer): Buffer {
  if (block.length < BLOCK_HEADER_BYTES + TAG_BYTES) throw new Error(`block too short (${block.length} bytes)`)
  if (block[0] !== BLOCK_VERSION) throw new Error(`unknown block version ${block[0]}`)
  const header = block.subarray(0, BLOCK_HEADER_BYTES)
  if (!equal(header.subarray(1), addressOf(keys, plainHashP))) throw new Error('block holds another address')
  const { key, nonce } = keyAndNonce(keys, plainHashP)
  const plain = open(key, nonce, block.subarray(BLOCK_HEADER_BYTES), header, 'block')
  if (!equal(plainHash(plain), plainHashP)) throw new Error('plaintext hash mismatch')
  return plain
}

/** The address a stored block claims, for rebuilding the index from the cas core alone. */
export function blockAddress(block: Buffer): Buffer | null {
  if (block.length < BLOCK_HEADER_BYTES + TAG_BYTES || block[0] !== BLOCK_VERSION) return null
  return block.subarray(1, BLOCK_HEADER_BYTES)
}
