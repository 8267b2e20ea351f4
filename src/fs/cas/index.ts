// The content store: content-defined chunks, convergently encrypted, on corestore (spec/cas.md).
export { Cas, WHOLE_BYTES, BATCH_FILES, BATCH_BYTES, type FileRef } from './cas.js'
export { ChunkStore, CAS_CORE_NAME, CAS_INDEX_CORE_NAME, type StoredObject } from './chunk-store.js'
export { CorruptContentError, MissingContentError } from './errors.js'
export { Chunker, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK, gearTable, cutLength, chunkBuffer, chunkStream, type GearTable } from './chunker.js'
export { casKeys, plainHash, addressOf, sealObject, openObject, blockAddress, type CasKeys, type SealedObject } from './convergent.js'
export { ManifestBuilder, encodeManifestNode, decodeManifestNode, MAX_FANOUT, MIN_FANOUT, type ManifestEntry, type ManifestNode } from './manifest.js'
export { RemoteStores, DEFAULT_REMOTE_TIMEOUT_MS, type RemoteStoreKeys } from './remote-store.js'
