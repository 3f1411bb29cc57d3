import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noCredentials } from '../src/registry/auth.js';
import { RegistryClient } from '../src/registry/client.js';

/**
 * Distribution 2.8 ignores `n`/`last` on tag lists, so `Link` pagination of
 * tags (distribution-spec "Listing Tags") is exercised against a fake registry
 * that pages everything, including a Link that tries to leave the origin.
 */
describe('RegistryClient pagination', () => {
  let server: Server;
  let host: string;
  const seen: string[] = [];
  const tags = ['a', 'b', 'c', 'd', 'e'];
  const repos = ['x/one', 'x/two', 'y/three'];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push(url.pathname + url.search);
      const page = (all: string[], key: string, base: string): void => {
        const n = Number(url.searchParams.get('n') ?? '100');
        const last = url.searchParams.get('last');
        const start = last === null ? 0 : all.indexOf(last) + 1;
        const items = all.slice(start, start + n);
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (start + n < all.length) headers.link = `<${base}?n=${n}&last=${items[items.length - 1]}>; rel="next"`;
        res.writeHead(200, headers).end(JSON.stringify({ name: 'r', [key]: items }));
      };
      if (url.pathname === '/v2/r/tags/list') page(tags, 'tags', '/v2/r/tags/list');
      else if (url.pathname === '/v2/_catalog') page(repos, 'repositories', '/v2/_catalog');
      else if (url.pathname === '/v2/evil/tags/list') {
        res.writeHead(200, { 'content-type': 'application/json', link: '<http://elsewhere.invalid/v2/evil/tags/list?last=z>; rel="next"' }).end('{"tags":["z"]}');
      } else if (url.pathname === '/v2/empty/tags/list') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"name":"empty","tags":null}');
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  async function collect(it: AsyncIterable<string>): Promise<string[]> {
    const out: string[] = [];
    for await (const x of it) out.push(x);
    return out;
  }

  describe('when the registry pages with Link', () => {
    it('follows every page of the tag list and of the catalog', async () => {
      const client = new RegistryClient({ plainHttp: [host], credentials: noCredentials });
      try {
        seen.length = 0;
        expect(await collect(client.repository(host, 'r').tags({ n: 2 }))).toEqual(tags);
        expect(seen).toEqual(['/v2/r/tags/list?n=2', '/v2/r/tags/list?n=2&last=b', '/v2/r/tags/list?n=2&last=d']);
        expect(await collect(client.catalog(host, { n: 1 }))).toEqual(repos);
      } finally {
        await client.close();
      }
    });

    it('does not follow a Link to another origin, and treats a null tag list as empty', async () => {
      const client = new RegistryClient({ plainHttp: [host], credentials: noCredentials, retries: 0 });
      try {
        expect(await collect(client.repository(host, 'evil').tags())).toEqual(['z']);
        expect(await collect(client.repository(host, 'empty').tags())).toEqual([]);
      } finally {
        await client.close();
      }
    });
  });
});
