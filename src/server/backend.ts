import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';

/**
 * What the HTTP layer of `airlock serve` needs from storage. A read-only back end
 * (an archive read by seeking) implements `ServerBackend`; the directory back end
 * also implements `WritableBackend`. Names are validated repository names
 * (distribution-spec "Pulling manifests": `<name>` grammar) before they get here.
 */
export interface BlobStat {
  readonly digest: Digest;
  readonly size: number;
}

export interface BlobRead extends BlobStat {
  readonly stream: Readable;
}

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface StoredManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  /** the exact bytes that were pushed: digests are sacred */
  readonly bytes: Buffer;
}

export interface PutManifestResult {
  readonly digest: Digest;
  /** the manifest's subject, answered as `OCI-Subject` when the referrers API is on */
  readonly subject?: Digest;
}

export interface ServerBackend {
  /** every repository that holds content, sorted */
  repositories(): Promise<string[]>;
  /** the repository's tags, sorted; undefined when the repository is unknown */
  tags(repo: string): Promise<string[] | undefined>;
  /** a blob (or manifest, which is a blob too) linked to the repository */
  statBlob(repo: string, digest: Digest): Promise<BlobStat | undefined>;
  readBlob(repo: string, digest: Digest, range?: ByteRange): Promise<BlobRead | undefined>;
  /** a manifest by tag or digest */
  getManifest(repo: string, reference: string): Promise<StoredManifest | undefined>;
  /** descriptors of the manifests in `repo` whose subject is `subject`, sorted by digest */
  referrers(repo: string, subject: Digest): Promise<Descriptor[]>;
  close?(): Promise<void>;
}

/** How a chunk must fit the upload it is appended to. */
export interface AppendOptions {
  /**
   * Where the chunk starts (`Content-Range: <start>-<end>`); it must equal the bytes
   * received so far (distribution-spec "Pushing a blob in chunks": otherwise 416).
   */
  readonly offset?: number;
  /** How many bytes the chunk has (`<end> - <start> + 1`): more or fewer is refused (400) and undone. */
  readonly length?: number;
}

export interface WritableBackend extends ServerBackend {
  /** open an upload session; returns its id */
  startUpload(repo: string): Promise<string>;
  /** bytes received so far, or undefined for an unknown session */
  uploadSize(repo: string, id: string): Promise<number | undefined>;
  /** Append a chunk (streamed; bounded by the back end's size limit). Returns the new size. */
  appendUpload(repo: string, id: string, body: Readable, opts?: AppendOptions): Promise<number>;
  /** Append the last (optional) chunk, check the digest, and make the blob visible. */
  completeUpload(repo: string, id: string, digest: Digest, body?: Readable, opts?: AppendOptions): Promise<BlobStat>;
  cancelUpload(repo: string, id: string): Promise<boolean>;
  /**
   * Link a blob from `from` into `repo`; false when `from` does not have it. Without
   * `from`, any repository that `mayRead` allows and that has the blob will do.
   */
  mountBlob(repo: string, from: string | undefined, digest: Digest, mayRead?: (repo: string) => boolean): Promise<boolean>;
  deleteBlob(repo: string, digest: Digest): Promise<boolean>;
  /** Validate and store manifest bytes under a tag or digest. */
  putManifest(repo: string, reference: string, bytes: Buffer, contentType: string | undefined): Promise<PutManifestResult>;
  /** Delete by digest (manifest, its tags and its referrer entry) or by tag (the tag only). */
  deleteManifest(repo: string, reference: string): Promise<boolean>;
}

export function isWritableBackend(b: ServerBackend): b is WritableBackend {
  return typeof (b as Partial<WritableBackend>).putManifest === 'function' && typeof (b as Partial<WritableBackend>).startUpload === 'function';
}

/** distribution-spec: `<name>` and `<reference>` grammars. */
export const NAME_PATTERN = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*';
export const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
