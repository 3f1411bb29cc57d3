import type { Readable } from 'node:stream';
import { AirlockError } from '../errors.js';
import { digestOf, isDigest, verifyBytes, type Digest } from '../oci/digest.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { filterByArtifactType, referrerDescriptor } from '../oci/referrers.js';
import { readAll, toReadable } from './read.js';
import type { OpOptions, ReferrerLister, ReferrersOptions, TagLister, Target } from './storage.js';

/**
 * Everything in memory: for fixtures, tests and small artifacts we create.
 * Content is verified on push like any other store.
 */
export class MemoryStore implements Target, ReferrerLister, TagLister {
  readonly #blobs = new Map<string, { desc: Descriptor; bytes: Buffer }>();
  readonly #tags = new Map<string, Descriptor>();
  readonly #referrers = new Map<string, Descriptor[]>();

  async fetch(desc: Descriptor): Promise<Readable> {
    const entry = this.#blobs.get(desc.digest);
    if (!entry) throw new AirlockError('NOT_FOUND', `${desc.digest}: not in the memory store`);
    return toReadable(entry.bytes);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.#blobs.has(desc.digest);
  }

  async push(desc: Descriptor, content: Readable | Uint8Array, _options?: OpOptions): Promise<void> {
    const bytes = content instanceof Uint8Array ? Buffer.from(content) : await readAll(content, Number.MAX_SAFE_INTEGER);
    verifyBytes(bytes, { digest: desc.digest, size: desc.size });
    if (this.#blobs.has(desc.digest)) return;
    this.#blobs.set(desc.digest, { desc, bytes });
    if (isManifestMediaType(desc.mediaType)) {
      const m = parseManifest(bytes, { mediaType: desc.mediaType });
      if (m.subject) {
        const list = this.#referrers.get(m.subject.digest) ?? [];
        list.push(referrerDescriptor(m, desc.digest, desc.size, desc.mediaType));
        this.#referrers.set(m.subject.digest, list);
      }
    }
  }

  /** Push bytes we made and return their descriptor. */
  async add(mediaType: string, bytes: Uint8Array, extra: Partial<Descriptor> = {}): Promise<Descriptor> {
    const desc: Descriptor = { ...extra, mediaType, digest: digestOf(bytes), size: bytes.byteLength };
    await this.push(desc, bytes);
    return desc;
  }

  async resolve(reference: string): Promise<Descriptor> {
    if (isDigest(reference)) {
      const e = this.#blobs.get(reference);
      if (e) return e.desc;
    }
    const d = this.#tags.get(reference);
    if (!d) throw new AirlockError('NOT_FOUND', `${reference}: no such tag or manifest in the memory store`);
    return d;
  }

  async tag(desc: Descriptor, _bytes: Uint8Array, tag: string): Promise<void> {
    if (!this.#blobs.has(desc.digest)) throw new AirlockError('NOT_FOUND', `${desc.digest}: cannot tag missing content`);
    this.#tags.set(tag, desc);
  }

  async *tags(): AsyncIterable<string> {
    yield* [...this.#tags.keys()].sort();
  }

  async referrers(subject: Descriptor, options: ReferrersOptions = {}): Promise<Descriptor[]> {
    return filterByArtifactType(this.#referrers.get(subject.digest) ?? [], options.artifactType);
  }

  /** A manifest by tag or digest with its exact bytes (the DiscoverySource shape). */
  async fetchManifest(reference: string): Promise<{ desc: Descriptor; bytes: Buffer }> {
    const desc = await this.resolve(reference);
    return { desc, bytes: this.#blobs.get(desc.digest)!.bytes };
  }

  /** Referrers as a registry with the API would list them. */
  async referrersFromApi(subject: Descriptor): Promise<Descriptor[] | undefined> {
    return this.referrers(subject);
  }

  bytes(digest: Digest | string): Buffer | undefined {
    return this.#blobs.get(digest)?.bytes;
  }

  descriptors(): Descriptor[] {
    return [...this.#blobs.values()].map((e) => e.desc);
  }

  tagMap(): ReadonlyMap<string, Descriptor> {
    return this.#tags;
  }
}
