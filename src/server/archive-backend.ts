import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { AirlockAnnotation } from '../archive/annotations.js';
import { fetchBytes } from '../content/read.js';
import { AirlockError, errorLine } from '../errors.js';
import { ArchiveReader } from '../layout/reader.js';
import type { Digest } from '../oci/digest.js';
import { Annotation, type Descriptor, isIndex, type Manifest, parseManifest } from '../oci/manifest.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { Reference } from '../oci/reference.js';
import { referrerDescriptor } from '../oci/referrers.js';
import { type BlobRead, type BlobStat, type ByteRange, type ServerBackend, type StoredManifest, TAG_RE } from './backend.js';
import { parseReference } from './validate.js';

interface RepoView {
  readonly tags: Map<string, Digest>;
  /** manifest digest → media type */
  readonly manifests: Map<Digest, string>;
  readonly blobs: Set<Digest>;
  /** subject digest → referrer descriptors */
  readonly referrers: Map<Digest, Map<Digest, Descriptor>>;
}

export interface ArchiveBackendOptions {
  /** repository for index.json entries that name no repository (a plain OCI layout); default `archive` */
  defaultRepository?: string;
  signal?: AbortSignal;
}

/**
 * A read-only back end over an airlock archive (an OCI image layout in a tar), read
 * by seeking: nothing is extracted. Repositories and tags come from index.json:
 * airlock's `dev.airlock.repository` annotation and the `org.opencontainers.image.ref.name`
 * reference, served under the repository path without the source registry host
 * (`quay.io/org/app:1.0` is served as `org/app:1.0`), like a mirror. Manifests are
 * read and verified once at open to learn what each repository holds and which
 * manifests refer to which subject.
 */
export class ArchiveBackend implements ServerBackend {
  readonly #reader: ArchiveReader;
  readonly #repos = new Map<string, RepoView>();
  readonly #parsed = new Map<Digest, Manifest>();

  private constructor(reader: ArchiveReader) {
    this.#reader = reader;
  }

  static async open(file: string, opts: ArchiveBackendOptions = {}): Promise<ArchiveBackend> {
    const reader = await ArchiveReader.open(file, opts.signal ? { signal: opts.signal } : {});
    const b = new ArchiveBackend(reader);
    try {
      for (const entry of reader.index.manifests) {
        const ann = entry.annotations ?? {};
        if (ann[AirlockAnnotation.Kind] === 'inventory') continue;
        const placed = placeEntry(entry, opts.defaultRepository ?? 'archive');
        if (!placed) continue;
        const view = b.#view(placed.repo);
        if (placed.tag !== undefined) view.tags.set(placed.tag, entry.digest);
        await b.#walk(view, entry, 0);
      }
    } catch (e) {
      await reader.close();
      throw e;
    }
    return b;
  }

  #view(repo: string): RepoView {
    let v = this.#repos.get(repo);
    if (!v) {
      v = { tags: new Map(), manifests: new Map(), blobs: new Set(), referrers: new Map() };
      this.#repos.set(repo, v);
    }
    return v;
  }

  async #manifest(desc: Descriptor): Promise<Manifest> {
    let m = this.#parsed.get(desc.digest);
    if (!m) {
      const bytes = await fetchBytes(this.#reader, desc, { side: 'archive' });
      try {
        m = parseManifest(bytes, { mediaType: desc.mediaType, what: `manifest ${desc.digest}`, side: 'archive' });
      } catch (e) {
        throw new AirlockError('ARCHIVE', `${this.#reader.path}: ${errorLine(e)}`, { cause: e, side: 'archive' });
      }
      this.#parsed.set(desc.digest, m);
    }
    return m;
  }

  async #walk(view: RepoView, desc: Descriptor, depth: number): Promise<void> {
    // content a platform filter left out (or non-distributable layers) is simply absent
    if (!this.#reader.entry(desc.digest)) return;
    if (!isManifestMediaType(desc.mediaType)) {
      view.blobs.add(desc.digest);
      return;
    }
    if (view.manifests.has(desc.digest) || depth > 16) return;
    view.manifests.set(desc.digest, desc.mediaType);
    const m = await this.#manifest(desc);
    if (m.subject) {
      let list = view.referrers.get(m.subject.digest);
      if (!list) view.referrers.set(m.subject.digest, (list = new Map()));
      list.set(desc.digest, referrerDescriptor(m, desc.digest, desc.size, desc.mediaType));
    }
    const children = isIndex(m) ? m.manifests : [m.config, ...m.layers];
    for (const c of children) await this.#walk(view, c, depth + 1);
  }

  async repositories(): Promise<string[]> {
    return [...this.#repos.keys()].sort();
  }

  async tags(repo: string): Promise<string[] | undefined> {
    const v = this.#repos.get(repo);
    return v ? [...v.tags.keys()].sort() : undefined;
  }

  async statBlob(repo: string, digest: Digest): Promise<BlobStat | undefined> {
    const v = this.#repos.get(repo);
    if (!v || !(v.blobs.has(digest) || v.manifests.has(digest))) return undefined;
    const e = this.#reader.entry(digest);
    return e ? { digest, size: e.size } : undefined;
  }

  async readBlob(repo: string, digest: Digest, range?: ByteRange): Promise<BlobRead | undefined> {
    const st = await this.statBlob(repo, digest);
    const e = this.#reader.entry(digest);
    if (!st || !e) return undefined;
    if (range) {
      // A part cannot be verified on its own; the client checks the whole blob's digest.
      return { ...st, stream: createReadStream(this.#reader.path, { start: e.offset + range.start, end: e.offset + range.end }) };
    }
    // Whole blobs go through the reader's verifying stream, and the last chunk is held
    // back until the digest checks out: a corrupt archive cuts the response short, so a
    // client never receives a complete body with the wrong content.
    const verified = await this.#reader.fetch({ mediaType: 'application/octet-stream', digest, size: e.size });
    const held = new HoldLast();
    verified.on('error', (err) => held.destroy(err));
    return { ...st, stream: verified.pipe(held) };
  }

  async getManifest(repo: string, reference: string): Promise<StoredManifest | undefined> {
    const v = this.#repos.get(repo);
    if (!v) return undefined;
    const ref = parseReference(reference);
    const digest = 'digest' in ref ? ref.digest : v.tags.get(ref.tag);
    if (digest === undefined) return undefined;
    const mediaType = v.manifests.get(digest);
    const e = this.#reader.entry(digest);
    if (mediaType === undefined || !e) return undefined;
    const bytes = await fetchBytes(this.#reader, { mediaType, digest, size: e.size }, { side: 'archive' });
    return { digest, mediaType, bytes };
  }

  async referrers(repo: string, subject: Digest): Promise<Descriptor[]> {
    const list = this.#repos.get(repo)?.referrers.get(subject);
    return list ? [...list.values()].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0)) : [];
  }

  async close(): Promise<void> {
    await this.#reader.close();
  }
}

/** Which repository (and tag) an index.json entry is served under. */
function placeEntry(entry: Descriptor, defaultRepository: string): { repo: string; tag?: string } | undefined {
  const ann = entry.annotations ?? {};
  const refName = ann[Annotation.RefName];
  const repository = ann[AirlockAnnotation.Repository];
  if (repository !== undefined) {
    const repo = repositoryPath(repository);
    if (repo === undefined) return undefined;
    const tag = ann[AirlockAnnotation.Tag] ?? (refName !== undefined ? tagOf(refName) : undefined);
    return tag !== undefined && TAG_RE.test(tag) ? { repo, tag } : { repo };
  }
  if (refName !== undefined) {
    if (TAG_RE.test(refName)) return { repo: defaultRepository, tag: refName };
    try {
      const r = Reference.parse(refName);
      return r.tag !== undefined ? { repo: r.repository, tag: r.tag } : { repo: r.repository };
    } catch {
      return { repo: defaultRepository };
    }
  }
  return { repo: defaultRepository };
}

function repositoryPath(name: string): string | undefined {
  try {
    return Reference.parse(name).repository;
  } catch {
    return undefined;
  }
}

function tagOf(refName: string): string | undefined {
  try {
    return Reference.parse(refName).tag;
  } catch {
    return undefined;
  }
}

/** Passes chunks through one behind, releasing the last only when the source ends cleanly. */
class HoldLast extends Transform {
  #last: Buffer | undefined;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const prev = this.#last;
    this.#last = chunk;
    cb(null, prev);
  }
  override _flush(cb: TransformCallback): void {
    cb(null, this.#last);
  }
}
