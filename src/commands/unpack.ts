import { setMaxListeners } from 'node:events';
import type { OpOptions } from '../content/storage.js';
import { AirlockError, errorLine, isAirlockError } from '../errors.js';
import type { ArchiveManifest as ArchiveEntry, CheckedArchive } from '../archive/check.js';
import { Semaphore } from '../graph/pool.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { encodeJson, isIndex, successors, type Descriptor } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { fallbackTag, referrerDescriptor, referrersIndex } from '../oci/referrers.js';
import { isValidRepository, Reference } from '../oci/reference.js';

/** What unpack needs of a destination repository; the registry client's Repository has it all. */
export interface Destination {
  exists(desc: Descriptor, options?: OpOptions): Promise<boolean>;
  /** `reopen` gives the bytes again from the start, so a transiently failed upload can be tried again */
  push(
    desc: Descriptor,
    content: NodeJS.ReadableStream | import('node:stream').Readable | Uint8Array,
    options?: OpOptions & { reopen?: () => Promise<import('node:stream').Readable> },
  ): Promise<void>;
  pushManifest(desc: Descriptor, bytes: Uint8Array, options?: OpOptions & { tag?: string }): Promise<{ subjectAccepted: boolean }>;
  mount?(desc: Descriptor, fromRepository: string, options?: OpOptions): Promise<boolean>;
  referrersFromApi(subject: Descriptor, options?: OpOptions): Promise<Descriptor[] | undefined>;
  referrersFromFallback(subject: Descriptor, options?: OpOptions): Promise<{ list: Descriptor[]; desc?: Descriptor; bytes?: Buffer }>;
}

export interface Mapping {
  /** `HOST[:PORT]` */
  registry: string;
  /** path prefix inside the registry, may be empty */
  prefix: string;
  /** keep the source registry host as the first path element */
  keepHost: boolean;
}

export function parseDestination(spec: string): Omit<Mapping, 'keepHost'> {
  const s = spec.replace(/^[a-z]+:\/\//, '').replace(/\/+$/, '');
  const slash = s.indexOf('/');
  const registry = slash < 0 ? s : s.slice(0, slash);
  const prefix = slash < 0 ? '' : s.slice(slash + 1);
  if (registry === '' || !/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$/.test(registry)) {
    throw new AirlockError('USAGE', `--to ${spec}: expected HOST[:PORT][/PREFIX], e.g. mirror.example:5000/ocp`);
  }
  if (prefix !== '' && !isValidRepository(prefix)) {
    throw new AirlockError('USAGE', `--to ${spec}: prefix "${prefix}" is not a valid repository path (lower-case letters, digits, . _ - and /)`);
  }
  return { registry, prefix };
}

/** `quay.io/org/app` → `HOST/PREFIX/org/app` (or `HOST/PREFIX/quay.io/org/app` with keepHost). */
export function mapRepository(sourceRepository: string, m: Mapping): string {
  const slash = sourceRepository.indexOf('/');
  const host = sourceRepository.slice(0, slash);
  const path = sourceRepository.slice(slash + 1);
  const parts = [m.prefix, m.keepHost ? host.replace(/:/g, '-').toLowerCase() : '', path].filter((p) => p !== '');
  const repo = parts.join('/');
  if (!isValidRepository(repo)) {
    throw new AirlockError('USAGE', `${sourceRepository} maps to "${repo}", which is not a valid repository name; choose another --to prefix`);
  }
  return `${m.registry}/${repo}`;
}

export interface UnpackOptions extends OpOptions {
  archive: CheckedArchive;
  mapping: Mapping;
  open: (registry: string, repository: string) => Destination;
  concurrency?: number;
  dryRun?: boolean;
  onEvent?: (e: UnpackEvent) => void;
}

export type UnpackEvent =
  | { type: 'blob'; repository: string; digest: Digest; size: number; action: 'pushed' | 'mounted' | 'present' }
  | { type: 'manifest'; repository: string; digest: Digest; action: 'pushed' | 'present'; tag?: string }
  | { type: 'fallback'; repository: string; subject: Digest; referrer: Digest; action: 'added' | 'present' };

export interface PlannedRepository {
  source: string;
  destination: string;
  images: { source: string; digest: Digest; tag?: string; destination: string }[];
  referrers: number;
  cosignTags: string[];
}

export interface UnpackReport {
  repositories: PlannedRepository[];
  pushed: { blobs: number; mounted: number; present: number; bytes: number; manifests: number; manifestsPresent: number };
  fallbackUpdates: number;
  seconds: number;
}

/** What goes where: computed before anything is pushed, and refused when two sources collide. */
export function planUnpack(archive: CheckedArchive, mapping: Mapping): PlannedRepository[] {
  const byRepo = new Map<string, PlannedRepository>();
  const seenDest = new Map<string, string>();
  const repoOf = (source: string): PlannedRepository => {
    let p = byRepo.get(source);
    if (!p) {
      const destination = mapRepository(source, mapping);
      const other = seenDest.get(destination);
      if (other !== undefined && other !== source) {
        throw new AirlockError('USAGE', `${other} and ${source} both map to ${destination}; use --keep-host or another prefix`);
      }
      seenDest.set(destination, source);
      p = { source, destination, images: [], referrers: 0, cosignTags: [] };
      byRepo.set(source, p);
    }
    return p;
  };
  for (const im of archive.inventory.images) {
    const p = repoOf(im.repository);
    const dest = Reference.parse(`${p.destination}${im.tag !== undefined ? `:${im.tag}` : ''}@${im.digest}`);
    p.images.push({ source: im.source, digest: im.digest, ...(im.tag !== undefined ? { tag: im.tag } : {}), destination: dest.toString() });
  }
  for (const r of archive.inventory.referrers) {
    const p = repoOf(r.repository);
    if (r.tag !== undefined) p.cosignTags.push(r.tag);
    else p.referrers++;
  }
  return [...byRepo.values()].sort((a, b) => a.destination.localeCompare(b.destination));
}

/**
 * Push a checked archive. Order per repository (regclient's copy order): blobs,
 * child manifests, indexes, then tags; referrers after their subject; so a tag
 * only moves once everything below it exists. Manifests go as their exact bytes.
 */
export async function unpack(o: UnpackOptions): Promise<UnpackReport> {
  const started = process.hrtime.bigint();
  const plan = planUnpack(o.archive, o.mapping);
  const report: UnpackReport = {
    repositories: plan,
    pushed: { blobs: 0, mounted: 0, present: 0, bytes: 0, manifests: 0, manifestsPresent: 0 },
    fallbackUpdates: 0,
    seconds: 0,
  };
  if (o.dryRun) return report;
  // Every request in flight listens on the caller's signal: that many listeners is not a leak.
  if (o.signal) setMaxListeners(0, o.signal);
  const u = new Unpacker(o, report);
  // Repositories one after another so a blob pushed to one can be mounted into the next.
  for (const p of plan) await u.repository(p);
  report.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return report;
}

class Unpacker {
  readonly #o: UnpackOptions;
  readonly #report: UnpackReport;
  readonly #sem: Semaphore;
  /** blob digest → destination repository that already has it (for cross-repository mount) */
  readonly #blobHome = new Map<string, string>();
  readonly #manifestsDone = new Map<string, Promise<void>>();

  constructor(o: UnpackOptions, report: UnpackReport) {
    this.#o = o;
    this.#report = report;
    this.#sem = new Semaphore(o.concurrency ?? 8);
  }

  #opts(): OpOptions {
    return this.#o.signal ? { signal: this.#o.signal } : {};
  }

  #dest(destination: string): Destination {
    const slash = destination.indexOf('/');
    return this.#o.open(destination.slice(0, slash), destination.slice(slash + 1));
  }

  async repository(p: PlannedRepository): Promise<void> {
    const dest = this.#dest(p.destination);
    const inv = this.#o.archive.inventory;
    for (const im of inv.images.filter((x) => x.repository === p.source)) {
      await this.#manifestTree(dest, p.destination, im.digest);
    }
    // Referrers after their subject; an edge whose subject is itself a referrer comes after it.
    const edges = inv.referrers.filter((r) => r.repository === p.source);
    const pending = new Set(edges);
    const pushedHere = new Set<string>(inv.images.filter((x) => x.repository === p.source).map((x) => x.digest));
    for (const d of this.#o.archive.manifests.keys()) if (pushedHere.has(d)) this.#childrenOf(d).forEach((c) => pushedHere.add(c));
    while (pending.size > 0) {
      const ready = [...pending].filter((r) => pushedHere.has(r.subject));
      if (ready.length === 0) {
        const r = [...pending][0]!;
        throw new AirlockError('ARCHIVE', `referrer ${r.digest} refers to ${r.subject}, which nothing in the archive pushes to ${p.destination}`);
      }
      for (const r of ready) pending.delete(r);
      await Promise.all(ready.map((r) => this.#manifestTree(dest, p.destination, r.digest)));
      // cosign tags are plain tags; referrers are made discoverable once per subject, not once each
      const bySubject = new Map<Digest, ArchiveEntry[]>();
      await Promise.all(
        ready.map(async (r) => {
          const entry = this.#o.archive.manifests.get(r.digest)!;
          if (r.tag === undefined) {
            bySubject.set(r.subject, [...(bySubject.get(r.subject) ?? []), entry]);
            return;
          }
          await this.#sem.run(() => dest.pushManifest(entry.desc, entry.bytes, { ...this.#opts(), tag: r.tag! }));
          this.#o.onEvent?.({ type: 'manifest', repository: p.destination, digest: r.digest, action: 'pushed', tag: r.tag });
        }),
      );
      await Promise.all([...bySubject].map(([subject, entries]) => this.#ensureListed(dest, p.destination, subject, entries)));
      for (const r of ready) pushedHere.add(r.digest);
    }
    // Tags last, once everything they point to (and at) exists.
    for (const im of inv.images.filter((x) => x.repository === p.source && x.tag !== undefined)) {
      const entry = this.#o.archive.manifests.get(im.digest)!;
      await this.#sem.run(() => dest.pushManifest(entry.desc, entry.bytes, { ...this.#opts(), tag: im.tag! }));
      this.#o.onEvent?.({ type: 'manifest', repository: p.destination, digest: im.digest, action: 'pushed', tag: im.tag! });
    }
  }

  #childrenOf(digest: string): string[] {
    const m = this.#o.archive.manifests.get(digest as Digest);
    if (!m || !isIndex(m.manifest)) return [];
    return m.manifest.manifests.flatMap((c) => [c.digest, ...this.#childrenOf(c.digest)]);
  }

  /** Push a manifest and everything below it (children first, then blobs, then the manifest itself). */
  async #manifestTree(dest: Destination, repo: string, digest: Digest): Promise<void> {
    const key = `${repo}@${digest}`;
    let p = this.#manifestsDone.get(key);
    if (!p) {
      p = this.#pushTree(dest, repo, digest);
      this.#manifestsDone.set(key, p);
    }
    return p;
  }

  async #pushTree(dest: Destination, repo: string, digest: Digest): Promise<void> {
    const entry = this.#o.archive.manifests.get(digest);
    if (!entry) return; // a child left out by a platform filter
    const m = entry.manifest;
    if (isIndex(m)) {
      await Promise.all(m.manifests.map((c) => this.#manifestTree(dest, repo, c.digest)));
    } else {
      await Promise.all(successors(m).map((b) => this.#blob(dest, repo, b)));
    }
    if (await this.#sem.run(() => dest.exists(entry.desc, this.#opts()))) {
      this.#report.pushed.manifestsPresent++;
      this.#o.onEvent?.({ type: 'manifest', repository: repo, digest, action: 'present' });
      return;
    }
    try {
      await this.#sem.run(() => dest.pushManifest(entry.desc, entry.bytes, this.#opts()));
    } catch (e) {
      const absent = isIndex(m) ? m.manifests.filter((c) => !this.#o.archive.manifests.has(c.digest)).length : 0;
      if (absent === 0 || isAirlockError(e, 'ABORTED')) throw e;
      // A platform-filtered archive carries the index whole but not every platform;
      // distribution-spec lets a registry refuse such a sparse index.
      throw new AirlockError(
        'REGISTRY',
        `${repo}: the registry refused index ${digest}, ${absent} of whose platforms are not in the archive (it was packed with --platform): ` +
          `its platform manifests are pushed, no tag was moved. Repack without --platform, or unpack into a registry that accepts sparse indexes (airlock serve does). (${errorLine(e)})`,
        { cause: e, side: 'destination' },
      );
    }
    this.#report.pushed.manifests++;
    this.#o.onEvent?.({ type: 'manifest', repository: repo, digest, action: 'pushed' });
  }

  async #blob(dest: Destination, repo: string, desc: Descriptor): Promise<void> {
    const key = `${repo}@${desc.digest}`;
    let p = this.#manifestsDone.get(key);
    if (!p) {
      p = this.#pushBlob(dest, repo, desc);
      this.#manifestsDone.set(key, p);
    }
    return p;
  }

  async #pushBlob(dest: Destination, repo: string, desc: Descriptor): Promise<void> {
    await this.#sem.run(async () => {
      const ev = (action: 'pushed' | 'mounted' | 'present'): void =>
        this.#o.onEvent?.({ type: 'blob', repository: repo, digest: desc.digest, size: desc.size, action });
      if (await dest.exists(desc, this.#opts())) {
        this.#report.pushed.present++;
        ev('present');
        return;
      }
      const home = this.#blobHome.get(desc.digest);
      if (home && home !== repo && dest.mount) {
        const slash = home.indexOf('/');
        if (await dest.mount(desc, home.slice(slash + 1), this.#opts())) {
          this.#report.pushed.mounted++;
          ev('mounted');
          return;
        }
      }
      try {
        const read = () => this.#o.archive.reader.fetch(desc, this.#opts());
        await dest.push(desc, await read(), { ...this.#opts(), reopen: read });
      } catch (e) {
        if (isAirlockError(e, 'ABORTED')) throw e;
        throw new AirlockError(isAirlockError(e) ? e.code : 'REGISTRY', `${repo}: pushing blob ${desc.digest}: ${errorLine(e)}`, {
          cause: e,
          side: 'destination',
        });
      }
      this.#blobHome.set(desc.digest, repo);
      this.#report.pushed.blobs++;
      this.#report.pushed.bytes += desc.size;
      ev('pushed');
    });
  }

  /**
   * Make a pushed referrer discoverable. A registry with the referrers API lists it
   * by itself; otherwise merge it into the subject's fallback tag index
   * (distribution-spec "Pushing Manifests with Subject"): read, add what is
   * missing, write, read back to confirm, retry when another writer raced us.
   */
  async #ensureListed(dest: Destination, repo: string, subject: Digest, entries: readonly ArchiveEntry[]): Promise<void> {
    const subjectDesc = this.#o.archive.manifests.get(subject)!.desc;
    const api = await this.#sem.run(() => dest.referrersFromApi(subjectDesc, this.#opts()));
    if (api !== undefined) {
      const missing = entries.filter((e) => !api.some((d) => d.digest === e.desc.digest));
      if (missing.length > 0) {
        throw new AirlockError('REGISTRY', `${repo}: the registry has the referrers API but does not list ${missing[0]!.desc.digest} under ${subject} after the push`, {
          side: 'destination',
        });
      }
      return;
    }
    const wanted = entries.map((e) => referrerDescriptor(e.manifest, e.desc.digest, e.desc.size, e.desc.mediaType));
    const absentFrom = (list: readonly Descriptor[]): Descriptor[] => wanted.filter((w) => !list.some((d) => d.digest === w.digest));
    let added: Descriptor[] | undefined;
    for (let attempt = 0; attempt < 8; attempt++) {
      const current = await this.#sem.run(() => dest.referrersFromFallback(subjectDesc, this.#opts()));
      const missing = absentFrom(current.list);
      if (missing.length === 0) break;
      added ??= missing;
      // Existing entries are kept as they are; the fallback index is ours to rewrite, no signature binds it.
      const next = encodeJson(referrersIndex([...current.list, ...missing]));
      const desc: Descriptor = { mediaType: MediaType.OciIndex, digest: digestOf(next), size: next.length };
      await this.#sem.run(() => dest.pushManifest(desc, next, { ...this.#opts(), tag: fallbackTag(subject) }));
      // There is no compare-and-swap on a tag: a writer that read before our write can
      // still replace it. Confirm once at once and once after a pause longer than a
      // read-modify-write takes, so a racing writer's stale write is caught and merged.
      const check = await this.#sem.run(() => dest.referrersFromFallback(subjectDesc, this.#opts()));
      if (absentFrom(check.list).length === 0) {
        await new Promise((r) => setTimeout(r, 150 + 100 * Math.random()));
        const again = await this.#sem.run(() => dest.referrersFromFallback(subjectDesc, this.#opts()));
        if (absentFrom(again.list).length === 0) {
          this.#report.fallbackUpdates += added.length;
          for (const w of added) this.#o.onEvent?.({ type: 'fallback', repository: repo, subject, referrer: w.digest, action: 'added' });
          return;
        }
      }
      if (attempt === 7) {
        throw new AirlockError('REGISTRY', `${repo}: could not add ${absentFrom(check.list)[0]?.digest ?? 'referrers'} to the fallback index ${fallbackTag(subject)} (other writers kept replacing it)`, {
          side: 'destination',
        });
      }
      await new Promise((r) => setTimeout(r, 20 * 2 ** attempt * Math.random()));
    }
    // every referrer was already listed (a re-run, or another writer added them)
    if (added === undefined) for (const w of wanted) this.#o.onEvent?.({ type: 'fallback', repository: repo, subject, referrer: w.digest, action: 'present' });
  }
}
