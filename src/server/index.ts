export { startServer, createHandler, parseListen, isLoopbackHost, type ServerOptions, type RunningServer } from './http.js';
export type { HandlerOptions } from './handler.js';
export { DirectoryBackend, type DirectoryBackendOptions } from './dir-backend.js';
export {
  isWritableBackend,
  type ServerBackend,
  type WritableBackend,
  type AppendOptions,
  type BlobStat,
  type BlobRead,
  type ByteRange,
  type StoredManifest,
  type PutManifestResult,
} from './backend.js';
export { DistributionError, isDistributionError, DISTRIBUTION_STATUS, type DistributionCode } from './errors.js';
export { ArchiveBackend, type ArchiveBackendOptions } from './archive-backend.js';
export { loadAccessControl, OPEN_ACCESS, type AccessControl, type AccessFiles, type Access, type Principal } from './auth.js';
export { DEFAULT_LIMITS, resolveLimits, type ServerLimits } from './limits.js';
export { collectGarbage, type GcOptions, type GcReport } from './gc.js';
