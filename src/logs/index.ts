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
export { BINDING_V2, BINDING_V2_BYTES, GENESIS_NONCE_BYTES, checkBindingFull, volumeIdOf, type Genesis } from './binding.js'
export { CONTROL_BLOCK_VERSION, CONTROL_BODY_VERSION, MAX_CONTROL_OPS, decodeControl, encodeControl, isControlBlock, scanControl, type ControlBody, type ControlOp, type ControlRecord } from './control.js'
export { computeWriterSet, rootNodeOf, type LogInfo, type OpPlace, type WriterInfo, type WriterSet, type WriterSetInput } from './writer-set.js'
export { HeldRange } from './held-range.js'
