import { fetchBytes } from '../content/read.js';
import { AirlockError, errorLine, isAirlockError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { isIndex, parseManifest, successors, type Descriptor, type ImageManifest, type Manifest } from '../oci/manifest.js';
import { isManifestMediaType, MediaType } from '../oci/media-types.js';
import { ArchiveReader, verifySidecar } from '../layout/reader.js';
import { AirlockAnnotation } from './annotations.js';
import { parseInventory, type Inventory } from './inventory.js';

export interface ArchiveManifest {
  desc: Descriptor;
  bytes: Buffer;
  manifest: Manifest;
}

export interface CheckedArchive {
  path: string;
  reader: ArchiveReader;
  inventory: Inventory;
  inventoryDesc: Descriptor;
  manifests: Map<Digest, ArchiveManifest>;
  sidecar: 'ok' | 'absent';
  blobs: number;
  bytes: number;
}

export interface CheckOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

function fail(message: string, cause?: unknown): never {
  throw new AirlockError('ARCHIVE', message, { side: 'archive', ...(cause !== undefined ? { cause } : {}) });
}

/**
 * Everything `verify` and `unpack` check before trusting a byte of the archive:
 * the tar's shape (by the reader), the sidecar, every blob's size and digest, every
 * descriptor reachable from index.json present, and the inventory agreeing with
 * the layout edge by edge. Signatures are checked afterwards, by src/verify.
 */
export async function checkArchive(path: string, options: CheckOptions = {}): Promise<CheckedArchive> {
  // The sidecar is hashed on a worker thread while the blobs are checked here.
  // A failure here stops it at once.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const sidecarCheck = verifySidecar(path, { signal: stop.signal });
  sidecarCheck.catch(() => {});
  const settle = async (): Promise<void> => {
    stop.abort();
    await sidecarCheck.catch(() => {});
    options.signal?.removeEventListener('abort', onAbort);
  };
  let reader: ArchiveReader;
  try {
    reader = await ArchiveReader.open(path, options.signal ? { signal: options.signal } : {});
  } catch (e) {
    await settle();
    throw e;
  }
  try {
    const checked = await checkOpen(path, reader, 'absent', options);
    const sidecar = await sidecarCheck;
    options.signal?.removeEventListener('abort', onAbort);
    return { ...checked, sidecar };
  } catch (e) {
    await settle();
    await reader.close();
    // Anything missing or mismatched inside the archive is the archive's fault (exit 4).
    if (isAirlockError(e) && e.code !== 'ARCHIVE' && e.code !== 'ABORTED' && e.side === 'archive') {
      throw new AirlockError('ARCHIVE', e.message, { side: 'archive', cause: e });
    }
    throw e;
  }
}

async function checkOpen(path: string, reader: ArchiveReader, sidecar: 'ok' | 'absent', options: CheckOptions): Promise<CheckedArchive> {
  await reader.verifyBlobs({ ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  const manifests = new Map<Digest, ArchiveManifest>();
  const loadManifest = async (desc: Descriptor, from: string): Promise<ArchiveManifest> => {
    const known = manifests.get(desc.digest);
    if (known) return known;
    if (!(await reader.exists(desc))) fail(`${from} names ${desc.digest}, which is not in the archive`);
    let bytes: Buffer;
    try {
      bytes = await fetchBytes(reader, desc, { what: `manifest ${desc.digest}`, side: 'archive' });
    } catch (e) {
      fail(`manifest ${desc.digest} (named by ${from}): ${errorLine(e)}`, e);
    }
    let manifest: Manifest;
    try {
      manifest = parseManifest(bytes, { mediaType: desc.mediaType, what: `manifest ${desc.digest}`, side: 'archive' });
    } catch (e) {
      fail(errorLine(e), e);
    }
    const entry = { desc, bytes, manifest };
    manifests.set(desc.digest, entry);
    return entry;
  };

  // The inventory first: it says which index children may be absent (platform filter).
  const invEntries = reader.index.manifests.filter(
    (d) => d.artifactType === MediaType.AirlockInventory || d.annotations?.[AirlockAnnotation.Kind] === 'inventory',
  );
  if (invEntries.length !== 1) {
    // Not (or no longer) an airlock archive: report the layout's own defects first (a missing
    // blob, an oversized manifest), as they say more than the missing inventory does.
    if (invEntries.length === 0) await reader.verifyGraph();
    fail(`index.json lists ${invEntries.length} inventories; an airlock archive has exactly one`);
  }
  const inventoryDesc = invEntries[0]!;
  const invManifest = await loadManifest(inventoryDesc, 'index.json');
  if (isIndex(invManifest.manifest) || invManifest.manifest.layers[0]?.mediaType !== MediaType.AirlockInventory) {
    fail(`inventory ${inventoryDesc.digest}: its first layer is not ${MediaType.AirlockInventory}`);
  }
  const inventory = parseInventory(await fetchBytes(reader, invManifest.manifest.layers[0]!, { what: 'inventory', side: 'archive' }));
  const skippedChildren = new Set<string>(inventory.images.flatMap((im) => im.skippedPlatforms.map((p) => p.digest)));

  // Every descriptor reachable from index.json is present (image-spec image-layout.md).
  const walk = async (desc: Descriptor, from: string, depth: number): Promise<void> => {
    if (depth > 16) fail(`${from}: manifests nest deeper than 16 levels`);
    const m = await loadManifest(desc, from);
    const where = `manifest ${desc.digest}`;
    if (isIndex(m.manifest)) {
      for (const child of m.manifest.manifests) {
        if (skippedChildren.has(child.digest) && !(await reader.exists(child))) continue;
        if (!isManifestMediaType(child.mediaType)) fail(`${where} lists ${child.digest} with media type ${child.mediaType}, not a manifest`);
        await walk(child, where, depth + 1);
      }
    } else {
      for (const b of successors(m.manifest)) {
        if (!(await reader.exists(b))) fail(`${where} names blob ${b.digest}, which is not in the archive`);
      }
    }
  };
  for (const d of reader.index.manifests) await walk(d, 'index.json', 0);

  // The inventory agrees with the layout.
  const listed = new Map(reader.index.manifests.map((d) => [d.digest as string, d]));
  for (const im of inventory.images) {
    const d = listed.get(im.digest);
    if (!d || d.annotations?.[AirlockAnnotation.Kind] !== 'image') fail(`inventory image ${im.source} (${im.digest}) is not listed in index.json`);
    for (const p of im.platforms) if (!manifests.has(p.digest)) fail(`inventory image ${im.source}: platform manifest ${p.digest} is not in the archive`);
  }
  const edgeKeys = new Set<string>();
  for (const r of inventory.referrers) {
    const m = manifests.get(r.digest);
    if (!m) fail(`inventory edge ${r.subject} → ${r.digest}: the referrer manifest is not in the archive`);
    if (!manifests.has(r.subject)) fail(`inventory edge ${r.subject} → ${r.digest}: the subject is not in the archive`);
    if (r.tag === undefined && m.manifest.subject?.digest !== r.subject) {
      fail(`inventory edge ${r.subject} → ${r.digest}: the manifest's subject is ${m.manifest.subject?.digest ?? 'missing'}`);
    }
    edgeKeys.add(`${r.subject}>${r.digest}`);
  }
  // Every edge must lead, subject by subject, back to an image the archive carries. A chain
  // that never does (a cycle, which only the inventory's claims about cosign tags can form,
  // or subjects only other such edges name) could never be pushed after its subject.
  const reachable = new Set<string>();
  const addTree = (d: string): void => {
    if (reachable.has(d)) return;
    reachable.add(d);
    const m = manifests.get(d as Digest);
    if (m && isIndex(m.manifest)) for (const c of m.manifest.manifests) addTree(c.digest);
  };
  for (const im of inventory.images) addTree(im.digest);
  let pending = [...inventory.referrers];
  while (pending.length > 0) {
    const ready = pending.filter((r) => reachable.has(r.subject));
    if (ready.length === 0) break;
    for (const r of ready) reachable.add(r.digest);
    pending = pending.filter((r) => !reachable.has(r.subject));
  }
  if (pending.length > 0) {
    const r = pending[0]!;
    const cycle = pending.some((x) => x.digest === r.subject);
    fail(`inventory edge ${r.subject} → ${r.digest} never leads back to an image in the archive${cycle ? ' (its referrers form a cycle)' : ''}`);
  }
  for (const d of reader.index.manifests) {
    const kind = d.annotations?.[AirlockAnnotation.Kind];
    if (kind === 'referrer' || kind === 'cosign-tag') {
      const subject = d.annotations?.[AirlockAnnotation.Subject];
      if (!subject || !edgeKeys.has(`${subject}>${d.digest}`)) fail(`index.json lists referrer ${d.digest}, which the inventory does not`);
    } else if (kind === 'image') {
      if (!inventory.images.some((im) => im.digest === d.digest)) fail(`index.json lists image ${d.digest}, which the inventory does not`);
    } else if (kind !== 'inventory') {
      fail(`index.json entry ${d.digest} has unknown ${AirlockAnnotation.Kind} ${JSON.stringify(kind)}`);
    }
  }
  // Trust roots are layers of the inventory manifest, so its digest covers them.
  const invLayers = new Set<string>((invManifest.manifest as ImageManifest).layers.map((l) => l.digest));
  for (const t of inventory.trustRoots) {
    if (!invLayers.has(t.digest)) fail(`trust root ${t.name} (${t.digest}) is not a layer of the inventory manifest`);
  }
  let bytes = 0;
  let blobs = 0;
  for (const e of reader.entries()) {
    if (e.name.startsWith('blobs/')) {
      blobs++;
      bytes += e.size;
    }
  }
  return { path, reader, inventory, inventoryDesc, manifests, sidecar, blobs, bytes };
}

export function isArchiveError(e: unknown): boolean {
  return isAirlockError(e, 'ARCHIVE');
}
