/**
 * Helpers for the `airlock serve` tests: start the server in-process on port 0 over a
 * temp directory, and speak distribution-spec with plain fetch.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { type RunningServer, startServer, type ServerOptions } from '../src/server/index.js';

export interface TestServer extends RunningServer {
  root: string;
  logs: string[];
  /** stop and start again on the same storage */
  restart(): Promise<TestServer>;
  /** close and remove the storage */
  dispose(): Promise<void>;
}

export async function startTestServer(opts: Omit<ServerOptions, 'root' | 'listen'> & { root?: string } = {}): Promise<TestServer> {
  const root = opts.root ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-')));
  const logs: string[] = [];
  const s = await startServer({ ...opts, root, listen: '127.0.0.1:0', log: (l) => logs.push(l) });
  const ts: TestServer = {
    ...s,
    close: () => s.close(),
    root,
    logs,
    restart: async () => {
      await s.close();
      return startTestServer({ ...opts, root });
    },
    dispose: async () => {
      await s.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
  return ts;
}

export function sha256(b: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export interface Blob {
  bytes: Buffer;
  digest: string;
  size: number;
}

export function blob(content: string | Buffer): Blob {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return { bytes, digest: sha256(bytes), size: bytes.byteLength };
}

/** POST then PUT ?digest= (the form every registry accepts). */
export async function pushBlob(base: string, repo: string, b: Blob): Promise<Response> {
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`POST upload: ${start.status} ${await start.text()}`);
  const loc = new URL(start.headers.get('location')!, base);
  loc.searchParams.set('digest', b.digest);
  return fetch(loc, { method: 'PUT', body: b.bytes, headers: { 'content-type': 'application/octet-stream' } });
}

export async function putManifest(base: string, repo: string, reference: string, bytes: Buffer | string, mediaType: string): Promise<Response> {
  return fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: bytes, headers: { 'content-type': mediaType } });
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Push a config and one layer, and return the image manifest bytes (not pushed). */
export async function seedImage(base: string, repo: string, seed: string, extra: Record<string, unknown> = {}): Promise<{ bytes: Buffer; digest: string; config: Blob; layer: Blob }> {
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = blob(`layer of ${seed}\n`.repeat(100));
  for (const b of [config, layer]) {
    const r = await pushBlob(base, repo, b);
    if (r.status !== 201) throw new Error(`push blob: ${r.status} ${await r.text()}`);
  }
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.size }],
      ...extra,
    }),
  );
  return { bytes, digest: sha256(bytes), config, layer };
}

export async function errorCode(r: Response): Promise<string | undefined> {
  const body = (await r.json()) as { errors?: Array<{ code: string }> };
  return body.errors?.[0]?.code;
}
