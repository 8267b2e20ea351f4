// The signed op log: one writer log per (node, volume). See spec/oplog.md.
export { WriterLog, writerLogName, type LogEntry, type ReadOptions, type VerifyResult } from './writer-log.js'
export {
  encodeEntry,
  decodeEntry,
  encodeEntryBody,
  decodeEntryBody,
  entryAssociatedData,
  ENTRY_AD_CONTEXT,
  ENTRY_BLOCK_VERSION,
  ENTRY_BODY_VERSION,
  LIMITS,
  MAX_BLOCK_BYTES,
  MAX_BODY_BYTES,
  type AuditOp,
  type EntryBody,
  type EntryPlace,
  type ShardChange
} from './entry-codec.js'
export { splitIntoEntries, ENTRY_TARGET_BYTES } from './entry-split.js'
export { BINDING_BYTES, BINDING_VERSION, bindingMessage, checkBinding, decodeBinding, encodeBinding, type Binding } from './binding.js'
export { EntryError, LogBindingError, LogFormatError } from './errors.js'
export { TreeHasher } from './merkle.js'
