import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Serve fixed files over HTTP on 127.0.0.1:0 (a Rekor key for pack to fetch, say). */
export async function serveFiles(files: Record<string, string | Buffer>): Promise<{ url: string; stop(): Promise<void> }> {
  const server = createServer((req, res) => {
    const body = files[req.url ?? ''];
    if (body === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
