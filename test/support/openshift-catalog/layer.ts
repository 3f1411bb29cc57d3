import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { MemoryStore } from '../../../src/content/memory.js';
import type { Digest } from '../../../src/oci/digest.js';
import { encodeJson, type Descriptor } from '../../../src/oci/manifest.js';
import { MediaType } from '../../../src/oci/media-types.js';

/**
 * Real tar layers and images for the catalog tests: every entry type a catalog image can
 * hold (files, directories, whiteouts, opaque markers, hard and symbolic links), gzip or
 * plain, deterministic (fixed mtime and owners).
 */
export type LayerEntry =
  | { readonly name: string; readonly body: string | Buffer; readonly mode?: number }
  | { readonly name: string; readonly dir: true }
  | { readonly name: string; readonly symlink: string }
  | { readonly name: string; readonly hardlink: string };

const MTIME = new Date('2026-01-01T00:00:00Z');

export async function tarBytes(entries: readonly LayerEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  const h = { mtime: MTIME, uid: 0, gid: 0, uname: 'root', gname: 'root' };
  for (const e of entries) {
    if ('dir' in e) p.entry({ ...h, name: e.name, type: 'directory', mode: 0o755 });
    else if ('symlink' in e) p.entry({ ...h, name: e.name, type: 'symlink', linkname: e.symlink, mode: 0o777 });
    else if ('hardlink' in e) p.entry({ ...h, name: e.name, type: 'link', linkname: e.hardlink, mode: 0o644 });
    else {
      const body = Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body, 'utf8');
      p.entry({ ...h, name: e.name, type: 'file', mode: e.mode ?? 0o644, size: body.length }, body);
    }
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface BuiltLayer {
  readonly descriptor: Descriptor;
  readonly diffId: Digest;
  readonly bytes: Buffer;
}

export async function gzipLayer(entries: readonly LayerEntry[], mediaType: string = MediaType.OciLayerGzip): Promise<BuiltLayer> {
  const tar = await tarBytes(entries);
  const gz = mediaType.includes('gzip') ? gzipSync(tar, { level: 6 }) : tar;
  const digest = `sha256:${createHash('sha256').update(gz).digest('hex')}` as Digest;
  return { descriptor: { mediaType, digest, size: gz.length }, diffId: `sha256:${createHash('sha256').update(tar).digest('hex')}` as Digest, bytes: gz };
}

export interface ImageOptions {
  /** config.Labels */
  readonly labels?: Record<string, string>;
  readonly entrypoint?: string[];
  readonly cmd?: string[];
  /** Docker schema 2 media types instead of OCI */
  readonly docker?: boolean;
  readonly platform?: { os: string; architecture: string };
  readonly tag?: string;
}

export interface BuiltImage {
  readonly store: MemoryStore;
  readonly manifest: Descriptor;
  readonly manifestBytes: Buffer;
  readonly config: Record<string, unknown>;
  readonly layers: readonly BuiltLayer[];
}

/** An image made of these layers, in a MemoryStore (tagged when `tag` is given). */
export async function buildImage(layerEntries: readonly (readonly LayerEntry[])[], opts: ImageOptions = {}, store = new MemoryStore()): Promise<BuiltImage> {
  const layerType = opts.docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip;
  const layers: BuiltLayer[] = [];
  for (const entries of layerEntries) {
    const l = await gzipLayer(entries, layerType);
    await store.push(l.descriptor, l.bytes);
    layers.push(l);
  }
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const config = {
    created: '2026-01-01T00:00:00Z',
    architecture: platform.architecture,
    os: platform.os,
    config: {
      User: '1001',
      ...(opts.entrypoint ? { Entrypoint: opts.entrypoint } : {}),
      ...(opts.cmd ? { Cmd: opts.cmd } : {}),
      ...(opts.labels ? { Labels: opts.labels } : {}),
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `test layer ${i}` })),
  };
  const configDesc = await store.add(opts.docker ? MediaType.DockerConfig : MediaType.OciConfig, encodeJson(config));
  const manifestBytes = encodeJson({
    schemaVersion: 2,
    mediaType: opts.docker ? MediaType.DockerManifest : MediaType.OciManifest,
    config: { mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size },
    layers: layers.map((l) => l.descriptor),
  });
  const manifest = await store.add(opts.docker ? MediaType.DockerManifest : MediaType.OciManifest, manifestBytes);
  if (opts.tag) await store.tag(manifest, manifestBytes, opts.tag);
  return { store, manifest, manifestBytes, config, layers };
}
