import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../src/oci/digest.js';
import { encodeJson, type Descriptor } from '../src/oci/manifest.js';
import { MediaType } from '../src/oci/media-types.js';
import { fallbackTag } from '../src/oci/referrers.js';
import { noCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';

/**
 * The client's referrers code against a small fake registry whose referrers
 * API can be switched on and off (go-containerregistry tests referrers both
 * ways, and so do we). Until `airlock serve` is wired in, this is the registry
 * that has the API.
 */
type Mode = 'api' | 'api-ignores-filter' | 'no-api-404' | 'no-api-405' | 'no-api-html' | 'missing-repo';

const subject: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(Buffer.from('subject')), size: 7 };
const sig: Descriptor = {
  mediaType: MediaType.OciManifest,
  digest: digestOf(Buffer.from('sig')),
  size: 3,
  artifactType: MediaType.SigstoreBundle03,
  annotations: { 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' },
};
const sbom: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(Buffer.from('sbom')), size: 4, artifactType: MediaType.Spdx };
const prov: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(Buffer.from('prov')), size: 4, artifactType: MediaType.InToto };
const fallbackBytes = encodeJson({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [sig, sbom] });

describe('Repository referrers', () => {
  let server: Server;
  let host: string;
  let mode: Mode = 'api';
  let fallbackPresent = true;
  const hits: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      hits.push(`${req.method} ${url.pathname}${url.search}`);
      const m = /^\/v2\/(.+)\/(referrers|manifests)\/(.+)$/.exec(url.pathname);
      if (!m) {
        res.writeHead(404).end();
        return;
      }
      const [, , kind, ref] = m;
      if (mode === 'missing-repo') {
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] }));
        return;
      }
      if (kind === 'referrers') {
        if (mode === 'no-api-404') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
          return;
        }
        if (mode === 'no-api-405') {
          res.writeHead(405).end();
          return;
        }
        if (mode === 'no-api-html') {
          res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
          return;
        }
        const filter = url.searchParams.get('artifactType');
        const applyFilter = mode === 'api' && filter !== null;
        // Two pages: the first links to the second (distribution-spec allows Link pagination here).
        const page = url.searchParams.get('page') ?? '1';
        let list = page === '1' ? [sig, sbom] : [prov];
        if (applyFilter) list = list.filter((d) => d.artifactType === filter);
        const headers: Record<string, string> = { 'content-type': MediaType.OciIndex };
        if (page === '1') {
          const next = new URLSearchParams(url.searchParams);
          next.set('page', '2');
          headers.link = `<${url.pathname}?${next.toString()}>; rel="next"`;
        }
        if (applyFilter) headers['oci-filters-applied'] = 'artifactType';
        res.writeHead(200, headers).end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: list }));
        return;
      }
      if (ref === fallbackTag(subject.digest) && fallbackPresent) {
        res
          .writeHead(200, {
            'content-type': MediaType.OciIndex,
            'docker-content-digest': digestOf(fallbackBytes),
            'content-length': String(fallbackBytes.length),
          })
          .end(fallbackBytes);
        return;
      }
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  let client: RegistryClient;
  beforeEach(async () => {
    await client?.close();
    client = new RegistryClient({ plainHttp: [host], credentials: noCredentials, retries: 0 });
    hits.length = 0;
    fallbackPresent = true;
  });
  afterAll(async () => {
    await client?.close();
  });

  describe('when the registry has the referrers API', () => {
    it('returns every page of the listing and remembers that the API exists', async () => {
      mode = 'api';
      const repo = client.repository(host, 'team/app');
      expect(repo.referrersApi()).toBe('unknown');
      expect(await repo.referrers(subject)).toEqual([sig, sbom, prov]);
      expect(repo.referrersApi()).toBe('yes');
      expect(hits.filter((h) => h.includes('/referrers/'))).toHaveLength(2);
      expect(hits.some((h) => h.includes(fallbackTag(subject.digest)))).toBe(false);
    });

    it('passes the artifactType filter and re-applies it when the server ignores it', async () => {
      mode = 'api-ignores-filter';
      const repo = client.repository(host, 'team/app');
      expect(await repo.referrers(subject, { artifactType: MediaType.Spdx })).toEqual([sbom]);
      expect(hits[0]).toContain(`artifactType=${encodeURIComponent(MediaType.Spdx)}`);
      mode = 'api';
      expect(await repo.referrers(subject, { artifactType: MediaType.InToto })).toEqual([prov]);
    });

    it('reports the API listing separately from the fallback tag', async () => {
      mode = 'api';
      const repo = client.repository(host, 'team/app');
      expect(await repo.referrersFromApi(subject)).toEqual([sig, sbom, prov]);
      const fb = await repo.referrersFromFallback(subject);
      expect(fb.list).toEqual([sig, sbom]);
      expect(fb.bytes?.equals(fallbackBytes)).toBe(true);
    });
  });

  describe('when the registry has no referrers API', () => {
    for (const m of ['no-api-404', 'no-api-405', 'no-api-html'] as const) {
      it(`falls back to the fallback tag index (${m}) and stops asking the API`, async () => {
        mode = m;
        const repo = client.repository(host, 'team/app');
        expect(await repo.referrers(subject)).toEqual([sig, sbom]);
        expect(repo.referrersApi()).toBe('no');
        expect(await repo.referrersFromApi(subject)).toBeUndefined();
        expect(await repo.referrers(subject, { artifactType: MediaType.Spdx })).toEqual([sbom]);
        expect(hits.filter((h) => h.includes('/referrers/'))).toHaveLength(1);
        // the memory is per repository
        expect(client.repository(host, 'team/other').referrersApi()).toBe('unknown');
        expect(client.repository(host, 'team/app')).toBe(repo);
      });
    }

    it('returns an empty list when the fallback tag does not exist', async () => {
      mode = 'no-api-404';
      fallbackPresent = false;
      const repo = client.repository(host, 'team/app');
      expect(await repo.referrers(subject)).toEqual([]);
      expect(await repo.referrersFromFallback(subject)).toEqual({ list: [] });
    });
  });

  describe('when the repository does not exist', () => {
    it('returns no referrers without deciding that the API is missing', async () => {
      mode = 'missing-repo';
      const repo = client.repository(host, 'team/nothing');
      expect(await repo.referrersFromApi(subject)).toEqual([]);
      expect(repo.referrersApi()).toBe('unknown');
    });
  });
});
