export { startServer, createHandler, parseListen, type ServerOptions, type RunningServer } from './http.js';
export { DirectoryBackend } from './dir-backend.js';
export {
  isWritableBackend,
  type ServerBackend,
  type WritableBackend,
  type BlobStat,
  type BlobRead,
  type ByteRange,
  type StoredManifest,
  type PutManifestResult,
} from './backend.js';
export { DistributionError, isDistributionError, DISTRIBUTION_STATUS, type DistributionCode } from './errors.js';
export { ArchiveBackend, type ArchiveBackendOptions } from './archive-backend.js';
