import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What to do with one request: answer it ourselves with a status, cut the
 * connection (before or in the middle of the body), stall, or pass it through.
 */
export type FaultAction =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { reset: 'before' | 'mid-body' }
  | { stall: true }
  | { truncate: true }
  | undefined;

export interface FaultProxy {
  host: string;
  /** requests seen, as "METHOD path" (for assertions on what the client did) */
  seen: string[];
  stop(): Promise<void>;
}

/**
 * A forwarding proxy in front of a real registry that injects faults a real
 * server cannot be made to produce on demand (the standards allow mocks only there).
 */
export async function startFaultProxy(target: string, rule: (req: IncomingMessage, n: number) => FaultAction): Promise<FaultProxy> {
  const seen: string[] = [];
  let n = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    const action = rule(req, n++);
    if (action && 'status' in action) {
      req.resume();
      res.writeHead(action.status, { 'content-type': 'application/json', ...(action.headers ?? {}) }).end(action.body ?? '{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}');
      return;
    }
    if (action && 'reset' in action && action.reset === 'before') {
      req.socket.destroy();
      return;
    }
    if (action && 'stall' in action) return; // never answer
    const [host, port] = target.split(':');
    const up = httpRequest(
      { host, port: Number(port), method: req.method, path: req.url, headers: { ...req.headers, host: target } },
      (upRes) => {
        const headers = { ...upRes.headers };
        // Location headers point at the real registry; keep clients talking to us.
        if (typeof headers.location === 'string') headers.location = headers.location.replace(`//${target}`, `//${req.headers.host}`);
        res.writeHead(upRes.statusCode ?? 502, headers);
        if (action && ('reset' in action || 'truncate' in action)) {
          let sent = 0;
          const limit = Number(upRes.headers['content-length'] ?? 0) / 2;
          upRes.on('data', (c: Buffer) => {
            if (sent + c.length >= limit) {
              res.write(c.subarray(0, Math.max(0, Math.floor(limit - sent))));
              res.socket?.destroy();
              upRes.destroy();
              return;
            }
            sent += c.length;
            res.write(c);
          });
          return;
        }
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
