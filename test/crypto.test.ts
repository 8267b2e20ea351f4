import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as crypto from '../src/crypto.js'

test('deriveKey separates contexts and ids', () => {
  const k = crypto.randomBytes(32)
  assert.notDeepEqual(crypto.deriveKey(k, 'a'), crypto.deriveKey(k, 'b'))
  assert.notDeepEqual(crypto.deriveKey(k, 'a', Buffer.from([1])), crypto.deriveKey(k, 'a', Buffer.from([2])))
  assert.deepEqual(crypto.deriveKey(k, 'a'), crypto.deriveKey(k, 'a'))
})

test('seal/open round trip, and tampering is an error naming the data', () => {
  const key = crypto.randomBytes(32)
  const nonce = crypto.randomBytes(crypto.NONCE_BYTES)
  const sealed = crypto.seal(key, nonce, Buffer.from('hello'))
  assert.equal(crypto.open(key, nonce, sealed).toString(), 'hello')
  sealed[0] ^= 1
  assert.throws(() => crypto.open(key, nonce, sealed, null, 'chunk X'), /chunk X: decryption failed/)
})

test('keys print as z-base-32 and parse from z-base-32 or hex', () => {
  const { publicKey } = crypto.generateKeyPair()
  const text = crypto.encodeKey(publicKey)
  assert.equal(text.length, 52)
  assert.deepEqual(crypto.decodeKey(text), publicKey)
  assert.deepEqual(crypto.decodeKey(publicKey.toString('hex')), publicKey)
  assert.throws(() => crypto.decodeKey('nope'), /invalid key "nope"/)
})

test('sign/verify', () => {
  const kp = crypto.generateKeyPair()
  const sig = crypto.sign(Buffer.from('m'), kp.secretKey)
  assert.ok(crypto.verify(Buffer.from('m'), sig, kp.publicKey))
  assert.ok(!crypto.verify(Buffer.from('n'), sig, kp.publicKey))
})

test('expandKey is deterministic and of the asked length', () => {
  const k = crypto.randomBytes(32)
  assert.equal(crypto.expandKey(k, 1000).length, 1000)
  assert.deepEqual(crypto.expandKey(k, 100), crypto.expandKey(k, 200).subarray(0, 100))
})
