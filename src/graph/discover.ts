import { AirlockError, errorLine, isAirlockError } from '../errors.js';
import type { OpOptions } from '../content/storage.js';
import type { Digest } from '../oci/digest.js';
import { isIndex, parseManifest, successors, type Descriptor, type Manifest, type Platform } from '../oci/manifest.js';
import { cosignTag, fallbackTag, type CosignSuffix } from '../oci/referrers.js';
import { isTagLister } from '../content/storage.js';
import { Reference } from '../oci/reference.js';
import { classify, type ReferrerKind } from './classify.js';
import { Semaphore } from './pool.js';
import { platformMatches as samePlatform } from '../config/attachments.js';

/**
 * What discovery needs from a source repository. The registry client's
 * Repository implements it; so can a memory store in tests. No HTTP here.
 */
export interface DiscoverySource {
  /** A manifest by tag or digest, with its exact bytes (digest verified by the source). */
  fetchManifest(reference: string, options?: OpOptions): Promise<{ desc: Descriptor; bytes: Buffer }>;
  /** The referrers API listing, or undefined when the registry has no referrers API. */
  referrersFromApi?(subject: Descriptor, options?: OpOptions): Promise<Descriptor[] | undefined>;
  /** The `sha256-<hex>` fallback tag index listing (empty when the tag does not exist). */
  referrersFromFallback?(subject: Descriptor, options?: OpOptions): Promise<{ list: Descriptor[] }>;
}

export type SourceOpener = (registry: string, repository: string) => DiscoverySource;

export interface TypeSelector {
  matches(type: string): boolean;
  /** true when nothing is selected, so no attachment look-up is needed */
  readonly none?: boolean;
}

export type FoundBy = 'referrers-api' | 'fallback-tag' | 'cosign-tag';

export interface GraphManifest {
  desc: Descriptor;
  bytes: Buffer;
  manifest: Manifest;
  /** `registry/repository` it was read from */
  repository: string;
}

export interface GraphBlob {
  desc: Descriptor;
  repository: string;
}

export interface GraphImage {
  /** the reference as asked for */
  requested: Reference;
  /** pinned: the requested reference with the digest it resolved to */
  pinned: Reference;
  desc: Descriptor;
  /** platform children packed (for an index) */
  platforms: { desc: Descriptor; platform?: Platform }[];
  /** children left out by a platform filter: the index bytes still name them */
  skipped: { desc: Descriptor; platform?: Platform }[];
}

export interface GraphEdge {
  subject: Digest;
  referrer: Descriptor;
  kind: ReferrerKind;
  types: string[];
  foundBy: FoundBy[];
  repository: string;
  /** set when found through a cosign tag */
  tag?: string;
}

export interface Graph {
  images: GraphImage[];
  manifests: Map<Digest, GraphManifest>;
  blobs: Map<Digest, GraphBlob>;
  edges: GraphEdge[];
  /** referrers found but not selected, by kind, for the report */
  skippedReferrers: { subject: Digest; digest: Digest; kind: ReferrerKind; types: string[] }[];
  warnings: string[];
}

export interface DiscoverOptions extends OpOptions {
  images: readonly { ref: Reference; platforms?: readonly Platform[] }[];
  open: SourceOpener;
  signatures: boolean;
  attachments: TypeSelector;
  /** global platform filter; per-image platforms win */
  platforms?: readonly Platform[];
  concurrency?: number;
  /** how many referrer-of-referrer levels to follow */
  maxDepth?: number;
  onEvent?: (event: DiscoveryEvent) => void;
}

export type DiscoveryEvent =
  | { type: 'image'; ref: string; digest: Digest }
  | { type: 'referrer'; subject: Digest; digest: Digest; kind: ReferrerKind; foundBy: FoundBy }
  | { type: 'warning'; message: string };

export function platformMatches(p: Platform | undefined, wanted: readonly Platform[]): boolean {
  if (wanted.length === 0) return true;
  // Entries without a platform (buildkit attestation manifests) are not images to filter out.
  if (!p) return true;
  return wanted.some((w) => samePlatform(w, p));
}

/**
 * Walk every image: pin it, take indexes whole (or the chosen platforms), then
 * find what refers to each manifest through the referrers API (or its fallback
 * tag) and cosign's tags, recursively, with loop protection and a depth limit.
 * OCI distribution-spec "Listing Referrers" and "Referrers Tag Schema"; cosign spec
 * SIGNATURE_SPEC.md (tag-based discovery).
 */
export async function discover(options: DiscoverOptions): Promise<Graph> {
  const walk = new Walk(options);
  await Promise.all(options.images.map((img) => walk.image(img.ref, img.platforms ?? options.platforms ?? [])));
  return walk.result();
}

class Walk {
  readonly #o: DiscoverOptions;
  readonly #sem: Semaphore;
  readonly #maxDepth: number;
  readonly #images: GraphImage[] = [];
  readonly #manifests = new Map<Digest, GraphManifest>();
  readonly #blobs = new Map<Digest, GraphBlob>();
  readonly #edges = new Map<string, GraphEdge>();
  readonly #skipped = new Map<string, Graph['skippedReferrers'][number]>();
  readonly #referrersVisited = new Set<string>();
  readonly #warnings: string[] = [];

  constructor(o: DiscoverOptions) {
    this.#o = o;
    this.#sem = new Semaphore(o.concurrency ?? 8);
    this.#maxDepth = o.maxDepth ?? 8;
  }

  #opts(): OpOptions {
    return this.#o.signal ? { signal: this.#o.signal } : {};
  }

  #source(repository: string): DiscoverySource {
    const slash = repository.indexOf('/');
    return this.#o.open(repository.slice(0, slash), repository.slice(slash + 1));
  }

  async #fetchManifest(repository: string, reference: string, what: string): Promise<{ desc: Descriptor; bytes: Buffer }> {
    try {
      return await this.#sem.run(() => this.#source(repository).fetchManifest(reference, this.#opts()));
    } catch (e) {
      throw wrap(e, `${repository}: ${what}`);
    }
  }

  async image(ref: Reference, platforms: readonly Platform[]): Promise<void> {
    const repository = ref.name;
    const { desc, bytes } = await this.#fetchManifest(repository, ref.target ?? 'latest', `resolving ${ref.toString()}`);
    if (ref.digest !== undefined && desc.digest !== ref.digest) {
      throw new AirlockError('DIGEST_MISMATCH', `${ref.toString()}: the registry served ${desc.digest}`, { side: 'source' });
    }
    const pinned = ref.withDigest(desc.digest);
    this.#o.onEvent?.({ type: 'image', ref: ref.toString(), digest: desc.digest });
    const image: GraphImage = { requested: ref, pinned, desc, platforms: [], skipped: [] };
    this.#images.push(image);
    const manifest = this.#addManifest(desc, bytes, repository, pinned.toString());
    const subjects: Descriptor[] = [desc];
    if (isIndex(manifest)) {
      const chosen = manifest.manifests.filter((c) => platformMatches(c.platform, platforms));
      for (const c of manifest.manifests) {
        if (!chosen.includes(c)) image.skipped.push({ desc: c, ...(c.platform ? { platform: c.platform } : {}) });
      }
      if (chosen.length === 0) {
        throw new AirlockError('USAGE', `${ref.toString()}: no platform of the index matches ${platforms.map(fmtPlatform).join(', ')}`);
      }
      for (const c of chosen) image.platforms.push({ desc: c, ...(c.platform ? { platform: c.platform } : {}) });
      subjects.push(...(await this.#children(manifest.manifests.filter((c) => chosen.includes(c)), repository, pinned.toString())));
    }
    await Promise.all(subjects.map((s) => this.#referrers(s, repository, 0, pinned.toString())));
  }

  /** Fetch an index's children (recursively for nested indexes); returns every manifest descriptor reached. */
  async #children(children: readonly Descriptor[], repository: string, what: string): Promise<Descriptor[]> {
    const reached: Descriptor[] = [];
    await Promise.all(
      children.map(async (child) => {
        const got = await this.#fetchManifest(repository, child.digest, `${what}: child manifest ${child.digest}`);
        const m = this.#addManifest(got.desc, got.bytes, repository, what);
        reached.push(child);
        if (isIndex(m)) reached.push(...(await this.#children(m.manifests, repository, what)));
      }),
    );
    return reached.sort((a, b) => a.digest.localeCompare(b.digest));
  }

  #addManifest(desc: Descriptor, bytes: Buffer, repository: string, what: string, parsed?: Manifest): Manifest {
    const existing = this.#manifests.get(desc.digest);
    if (existing) return existing.manifest;
    const manifest = parsed ?? parseManifest(bytes, { mediaType: desc.mediaType, what: `${what}: manifest ${desc.digest}`, side: 'source' });
    this.#manifests.set(desc.digest, { desc, bytes, manifest, repository });
    if (!isIndex(manifest)) {
      for (const b of successors(manifest)) {
        if (!this.#blobs.has(b.digest)) this.#blobs.set(b.digest, { desc: b, repository });
      }
    }
    return manifest;
  }

  async #referrers(subject: Descriptor, repository: string, depth: number, image: string): Promise<void> {
    const key = `${repository}@${subject.digest}`;
    if (this.#referrersVisited.has(key)) return;
    this.#referrersVisited.add(key);
    if (depth > this.#maxDepth) {
      this.#warn(`${image}: referrers deeper than ${this.#maxDepth} levels below ${subject.digest} were not followed`);
      return;
    }
    const wantSignatures = this.#o.signatures;
    const wantAttachments = !this.#o.attachments.none;
    if (!wantSignatures && !wantAttachments) return;
    const found: { desc: Descriptor; foundBy: FoundBy; tag?: string; suffix?: CosignSuffix }[] = [];
    const src = this.#source(repository);

    // OCI 1.1 referrers API, else the fallback tag index (distribution-spec "Referrers Tag Schema").
    let api: Descriptor[] | undefined;
    if (src.referrersFromApi) {
      api = await this.#call(() => src.referrersFromApi!(subject, this.#opts()), `${image}: referrers API for ${subject.digest}`);
    }
    if (api !== undefined) {
      for (const d of api) found.push({ desc: d, foundBy: 'referrers-api' });
    } else if (src.referrersFromFallback && (await this.#mayHaveTag(repository, fallbackTag(subject.digest)))) {
      const fb = await this.#call(() => src.referrersFromFallback!(subject, this.#opts()), `${image}: referrers fallback tag for ${subject.digest}`);
      for (const d of fb?.list ?? []) found.push({ desc: d, foundBy: 'fallback-tag' });
    }
    // cosign's tag convention, in the subject's repository.
    const suffixes: CosignSuffix[] = [];
    if (wantSignatures) suffixes.push('sig');
    if (wantAttachments) suffixes.push('att', 'sbom');
    await Promise.all(
      suffixes.map(async (suffix) => {
        const tag = cosignTag(subject.digest, suffix);
        if (!(await this.#mayHaveTag(repository, tag))) return;
        try {
          const got = await this.#sem.run(() => src.fetchManifest(tag, this.#opts()));
          found.push({ desc: got.desc, foundBy: 'cosign-tag', tag, suffix });
          this.#prefetched.set(got.desc.digest, got);
        } catch (e) {
          if (isAirlockError(e, 'NOT_FOUND')) return;
          throw wrap(e, `${image}: cosign tag ${tag} in ${repository}`);
        }
      }),
    );

    const next: Descriptor[] = [];
    const ordered = found.sort(byFound);
    // fetch every listed manifest at once (the semaphore bounds it), then judge them in a fixed order
    const fetched = await Promise.all(
      ordered.map(
        (f) =>
          this.#prefetched.get(f.desc.digest) ??
          this.#fetchManifest(repository, f.desc.digest, `${image}: referrer ${f.desc.digest} of ${subject.digest}`),
      ),
    );
    for (const [i, f] of ordered.entries()) {
      const got = fetched[i]!;
      const manifest = parseManifest(got.bytes, { mediaType: got.desc.mediaType, what: `referrer ${got.desc.digest}`, side: 'source' });
      if (f.foundBy !== 'cosign-tag' && manifest.subject?.digest !== subject.digest) {
        this.#warn(`${image}: ${f.foundBy} listed ${got.desc.digest} for ${subject.digest}, but its subject is ${manifest.subject?.digest ?? 'missing'}; ignored`);
        continue;
      }
      const c = classify(manifest, f.suffix);
      const selected = c.kind === 'signature' ? wantSignatures : c.types.some((t) => this.#o.attachments.matches(t));
      const edgeKey = `${subject.digest}>${got.desc.digest}${f.tag ? `#${f.tag}` : ''}`;
      if (!selected) {
        this.#skipped.set(edgeKey, { subject: subject.digest, digest: got.desc.digest, kind: c.kind, types: c.types });
        continue;
      }
      const existing = this.#edges.get(edgeKey);
      if (existing) {
        if (!existing.foundBy.includes(f.foundBy)) existing.foundBy.push(f.foundBy);
        continue;
      }
      const referrer: Descriptor = { ...f.desc, mediaType: got.desc.mediaType, digest: got.desc.digest, size: got.desc.size };
      this.#edges.set(edgeKey, {
        subject: subject.digest,
        referrer,
        kind: c.kind,
        types: c.types,
        foundBy: [f.foundBy],
        repository,
        ...(f.tag ? { tag: f.tag } : {}),
      });
      this.#o.onEvent?.({ type: 'referrer', subject: subject.digest, digest: got.desc.digest, kind: c.kind, foundBy: f.foundBy });
      const m = this.#addManifest(got.desc, got.bytes, repository, `${image}: referrer`, manifest);
      if (isIndex(m)) await this.#children(m.manifests, repository, `${image}: referrer ${got.desc.digest}`);
      next.push(got.desc);
    }
    await Promise.all(next.map((d) => this.#referrers(d, repository, depth + 1, image)));
  }

  readonly #prefetched = new Map<string, { desc: Descriptor; bytes: Buffer }>();
  readonly #tagSets = new Map<string, Promise<Set<string> | undefined>>();

  /**
   * Whether a tag may exist: one tags listing per repository answers every cosign and
   * fallback tag look-up, instead of a request per subject and suffix that mostly
   * answers 404 (three or four per manifest). When the listing is refused, fails, or
   * is very long, each tag is looked up directly instead.
   */
  async #mayHaveTag(repository: string, tag: string): Promise<boolean> {
    let p = this.#tagSets.get(repository);
    if (!p) {
      p = this.#listTags(repository);
      this.#tagSets.set(repository, p);
    }
    const tags = await p;
    return tags === undefined || tags.has(tag);
  }

  async #listTags(repository: string): Promise<Set<string> | undefined> {
    const src = this.#source(repository);
    if (!isTagLister(src)) return undefined;
    try {
      return await this.#sem.run(async () => {
        const set = new Set<string>();
        for await (const t of src.tags(this.#opts())) {
          set.add(t);
          if (set.size > MAX_LISTED_TAGS) return undefined;
        }
        return set;
      });
    } catch (e) {
      if (isAirlockError(e, 'ABORTED') || this.#o.signal?.aborted) throw e;
      return undefined;
    }
  }

  async #call<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await this.#sem.run(fn);
    } catch (e) {
      if (isAirlockError(e, 'NOT_FOUND')) return undefined as T;
      throw wrap(e, what);
    }
  }

  #warn(message: string): void {
    this.#warnings.push(message);
    this.#o.onEvent?.({ type: 'warning', message });
  }

  result(): Graph {
    const images = [...this.#images].sort((a, b) => a.pinned.toString().localeCompare(b.pinned.toString()));
    const edges = [...this.#edges.values()].sort(
      (a, b) => a.subject.localeCompare(b.subject) || a.referrer.digest.localeCompare(b.referrer.digest) || (a.tag ?? '').localeCompare(b.tag ?? ''),
    );
    for (const e of edges) e.foundBy.sort();
    return {
      images,
      manifests: this.#manifests,
      blobs: this.#blobs,
      edges,
      skippedReferrers: [...this.#skipped.values()],
      warnings: [...this.#warnings].sort(),
    };
  }
}

/** Past this many tags a listing costs more than the look-ups it saves. */
const MAX_LISTED_TAGS = 50_000;

function byFound(a: { desc: Descriptor; foundBy: FoundBy }, b: { desc: Descriptor; foundBy: FoundBy }): number {
  return a.desc.digest.localeCompare(b.desc.digest) || a.foundBy.localeCompare(b.foundBy);
}

function fmtPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function wrap(e: unknown, what: string): AirlockError {
  if (isAirlockError(e) && (e.code === 'ABORTED' || e.message.startsWith(what))) return e;
  const code = isAirlockError(e) ? e.code : 'REGISTRY';
  return new AirlockError(code, `${what}: ${errorLine(e)}`, { cause: e, side: 'source' });
}
