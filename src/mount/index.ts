// The FUSE mount of a volume (issue 4): VolumeMount, crash recovery of the spool, stale mounts.
export { VolumeMount, recoverSpool, cleanupStaleMount, type MountOptions } from './mount.js'
export { SPOOL_META_VERSION, decodeSpoolMeta, type SpoolMeta } from './spool.js'
