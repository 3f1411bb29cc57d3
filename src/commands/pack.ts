import type { Fetcher, OpOptions } from '../content/storage.js';
import { AirlockError, errorLine, isAirlockError } from '../errors.js';
import { planArchive, type ArchivePlan, type TrustRootContent } from '../archive/build.js';
import { fetchBytes } from '../content/read.js';
import { isIndex, successors, type Descriptor } from '../oci/manifest.js';
import type { Graph } from '../graph/discover.js';
import type { Inventory } from '../archive/inventory.js';
import { discover, type DiscoveryEvent, type DiscoverySource, type TypeSelector } from '../graph/discover.js';
import { ArchiveWriter } from '../layout/writer.js';
import type { Platform } from '../oci/manifest.js';
import type { Reference } from '../oci/reference.js';
import { VERSION } from '../version.js';

export type PackSource = DiscoverySource & Fetcher;

export interface PackOptions extends OpOptions {
  images: readonly { ref: Reference; platforms?: readonly Platform[] }[];
  signatures: boolean;
  attachments: TypeSelector;
  platforms?: readonly Platform[];
  /** the image set as plain data for the inventory; never credentials */
  imageSet: unknown;
  output: string;
  open: (registry: string, repository: string) => PackSource;
  trustRoots: readonly TrustRootContent[];
  concurrency?: number;
  /** seconds since the epoch for tar mtimes and the inventory's `created` (SOURCE_DATE_EPOCH) */
  epoch: number;
  onEvent?: (e: PackEvent) => void;
  /**
   * Called once everything is discovered and planned, before the archive file is
   * created (`pack --verify`): throw to write nothing. `readSmall` reads a small blob
   * (a signature payload) from its source, digest-checked.
   */
  beforeWrite?: (plan: ArchivePlan, graph: Graph, readSmall: (desc: Descriptor, repository: string) => Promise<Buffer>) => Promise<void>;
}

export type PackEvent = DiscoveryEvent | { type: 'blob'; digest: string; size: number; done: number; total: number };

export interface PackReport {
  output: string;
  sha256: string;
  size: number;
  inventory: Inventory;
  warnings: string[];
  seconds: number;
}

/**
 * Discover everything first (manifests are small and held in memory), so that
 * index.json and the inventory are known before any layer is streamed; then
 * stream each blob from its source into the tar, verified on the way.
 */
export async function pack(o: PackOptions): Promise<PackReport> {
  const started = process.hrtime.bigint();
  const signal = o.signal;
  const graph = await discover({
    images: o.images,
    open: o.open,
    signatures: o.signatures,
    attachments: o.attachments,
    ...(o.platforms ? { platforms: o.platforms } : {}),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    ...(signal ? { signal } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  });
  const plan = planArchive(graph, {
    version: VERSION,
    created: new Date(o.epoch * 1000),
    imageSet: o.imageSet,
    trustRoots: o.trustRoots,
  });
  if (o.beforeWrite) {
    await o.beforeWrite(plan, graph, (desc, repository) => {
      const slash = repository.indexOf('/');
      return fetchBytes(o.open(repository.slice(0, slash), repository.slice(slash + 1)), desc, { what: `${repository}: blob ${desc.digest}`, side: 'source' });
    });
  }
  const writer = await ArchiveWriter.create({ path: o.output, mtime: o.epoch, ...(signal ? { signal } : {}) });
  try {
    await writer.writeHeader(plan.indexBytes);
    for (const c of plan.created) await writer.addBlob(c.desc, c.bytes);
    const manifests = [...graph.manifests.values()].sort((a, b) => a.desc.digest.localeCompare(b.desc.digest));
    for (const m of manifests) await writer.addBlob(m.desc, m.bytes);
    // Blobs (layers, configs, attachment payloads) last, in digest order, several at once: the
    // writer knows every offset up front, so the bytes do not depend on which fetch ends first.
    const blobs = [...graph.blobs.values()].sort((a, b) => a.desc.digest.localeCompare(b.desc.digest));
    const total = blobs.length;
    const repoOf = new Map(blobs.map((b) => [b.desc.digest, b.repository]));
    let done = 0;
    let owners: Map<string, string> | undefined;
    await writer.addBlobs(
      blobs.map((b) => ({
        desc: b.desc,
        open: (sig: AbortSignal) => {
          const slash = b.repository.indexOf('/');
          return o.open(b.repository.slice(0, slash), b.repository.slice(slash + 1)).fetch(b.desc, { signal: sig });
        },
      })),
      {
        concurrency: o.concurrency ?? 8,
        onBlob: (desc) => {
          done++;
          o.onEvent?.({ type: 'blob', digest: desc.digest, size: desc.size, done, total });
        },
        describe: (desc, e) => {
          if (isAirlockError(e, 'ABORTED') || isAirlockError(e, 'IO')) return e;
          // One line naming the image the blob belongs to and the blob, without saying either twice.
          const owner = (owners ??= blobOwners(graph)).get(desc.digest) ?? repoOf.get(desc.digest) ?? '';
          const line = errorLine(e);
          const msg = line.includes(desc.digest) ? `${owner}: ${line}` : `${owner}: blob ${desc.digest}: ${line}`;
          return new AirlockError(isAirlockError(e) ? e.code : 'REGISTRY', msg, {
            cause: e,
            side: 'source',
          });
        },
      },
    );
    const result = await writer.finish();
    return {
      output: result.path,
      sha256: result.sha256,
      size: result.size,
      inventory: plan.inventory,
      warnings: graph.warnings,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

/** Blob digest → the reference of the first image (or the image a referrer hangs off) that needs it, for error lines. */
function blobOwners(graph: Graph): Map<string, string> {
  const owner = new Map<string, string>();
  for (const im of graph.images) {
    const ref = im.requested.toString();
    for (const d of [im.desc, ...im.platforms.map((p) => p.desc)]) if (!owner.has(d.digest)) owner.set(d.digest, ref);
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of graph.edges) {
      const ref = owner.get(e.subject);
      if (ref !== undefined && !owner.has(e.referrer.digest)) {
        owner.set(e.referrer.digest, ref);
        grew = true;
      }
    }
  }
  const out = new Map<string, string>();
  for (const [digest, m] of graph.manifests) {
    const ref = owner.get(digest);
    if (ref === undefined || isIndex(m.manifest)) continue;
    for (const b of successors(m.manifest)) if (!out.has(b.digest)) out.set(b.digest, ref);
  }
  return out;
}
