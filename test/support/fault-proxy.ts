import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What to do with one request: answer it ourselves with a status, cut the
 * connection (before or in the middle of the body), stall, truncate, corrupt,
 * redirect, or pass it through (undefined).
 *
 * `after` is the number of body bytes let through before the fault (default:
 * half the Content-Length).
 */
export type FaultAction =
  | { status: number; headers?: Record<string, string>; body?: string }
  /** destroy the socket before any answer, or after `after` body bytes */
  | { reset: 'before' | 'mid-body'; after?: number }
  /** pass `after` bytes of the request body (default half its Content-Length) to the registry, then cut both sides */
  | { reset: 'mid-request'; after?: number }
  /** let the registry handle the request in full, then cut the client off without its answer */
  | { reset: 'answer-lost' }
  /** never answer, or stop sending (socket kept open) after `after` body bytes */
  | { stall: true | 'mid-body'; after?: number }
  /** drop Content-Length and end the response cleanly after `after` bytes: a short body with no transport error */
  | { truncate: true; after?: number }
  /** flip one byte of the body at offset `at` (default 0) */
  | { corrupt: true; at?: number }
  /** answer 307 with this Location (absolute URL) */
  | { redirect: string }
  /** forward without the Range header, as a server that does not do ranges would answer (200, whole body) */
  | { dropRange: true }
  | undefined;

export interface SeenRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export interface FaultProxy {
  host: string;
  /** requests seen, as "METHOD path" (for assertions on what the client did) */
  seen: string[];
  /** the same requests with their Range and Authorization headers */
  requests: SeenRequest[];
  stop(): Promise<void>;
}

/**
 * A forwarding proxy in front of a real registry that injects faults a real
 * server cannot be made to produce on demand (the standards allow mocks only there).
 */
export async function startFaultProxy(target: string, rule: (req: IncomingMessage, n: number) => FaultAction): Promise<FaultProxy> {
  const seen: string[] = [];
  const requests: SeenRequest[] = [];
  let n = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      ...(typeof req.headers.range === 'string' ? { range: req.headers.range } : {}),
      ...(typeof req.headers.authorization === 'string' ? { authorization: req.headers.authorization } : {}),
    });
    const action = rule(req, n++);
    if (action && 'status' in action) {
      req.resume();
      res.writeHead(action.status, { 'content-type': 'application/json', ...(action.headers ?? {}) }).end(action.body ?? '{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}');
      return;
    }
    if (action && 'redirect' in action) {
      req.resume();
      res.writeHead(307, { location: action.redirect, 'content-length': '0' }).end();
      return;
    }
    if (action && 'reset' in action && action.reset === 'before') {
      req.socket.destroy();
      return;
    }
    if (action && 'stall' in action && action.stall === true) return; // never answer
    const [host, port] = target.split(':');
    if (action && 'reset' in action && action.reset === 'mid-request') {
      // The registry sees an upload that stops part-way, the client a dead connection.
      const limit = action.after ?? Math.floor(Number(req.headers['content-length'] ?? 0) / 2);
      const up = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: { ...req.headers, host: target } });
      up.on('error', () => undefined);
      up.on('response', (r) => r.resume());
      let sent = 0;
      let cut = false;
      const stop = (): void => {
        cut = true;
        req.pause();
        up.destroy();
        req.socket.destroy();
      };
      req.on('data', (c: Buffer) => {
        if (cut) return;
        const take = Math.min(c.length, limit - sent);
        sent += take;
        if (take > 0) up.write(c.subarray(0, take));
        if (sent >= limit) up.write(Buffer.alloc(0), stop);
      });
      req.on('end', () => {
        if (!cut) stop();
      });
      return;
    }
    const fwd: Record<string, string | string[] | undefined> = { ...req.headers, host: target };
    if (action && 'dropRange' in action) delete fwd.range;
    const up = httpRequest(
      { host, port: Number(port), method: req.method, path: req.url, headers: fwd },
      (upRes) => {
        const headers = { ...upRes.headers };
        // Location headers point at the real registry; keep clients talking to us.
        if (typeof headers.location === 'string') headers.location = headers.location.replace(`//${target}`, `//${req.headers.host}`);
        if (action && 'reset' in action && action.reset === 'answer-lost') {
          upRes.resume();
          upRes.on('end', () => res.socket?.destroy());
          return;
        }
        const declared = Number(upRes.headers['content-length'] ?? 0);
        if (action && ('reset' in action || 'stall' in action || 'truncate' in action)) {
          const limit = action.after ?? Math.floor(declared / 2);
          const truncate = 'truncate' in action;
          if (truncate) delete headers['content-length'];
          res.writeHead(upRes.statusCode ?? 502, headers);
          let sent = 0;
          let cut = false;
          // The last bytes are written first and the cut made once they are on the
          // wire; destroying at once would drop them and look like a reset before the answer.
          const stop = (last: Buffer): void => {
            cut = true;
            upRes.destroy();
            if (truncate) res.end(last);
            else if ('reset' in action) res.write(last, () => res.socket?.destroy());
            else res.write(last); // stall: keep the socket open and send nothing more
          };
          if (limit <= 0) {
            stop(Buffer.alloc(0));
            return;
          }
          upRes.on('data', (c: Buffer) => {
            if (cut) return;
            if (sent + c.length >= limit) {
              stop(c.subarray(0, limit - sent));
              sent = limit;
              return;
            }
            sent += c.length;
            res.write(c);
          });
          upRes.on('end', () => {
            if (!cut) res.end();
          });
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, headers);
        if (action && 'corrupt' in action) {
          const at = action.at ?? 0;
          let pos = 0;
          upRes.on('data', (c: Buffer) => {
            if (at >= pos && at < pos + c.length) {
              c = Buffer.from(c);
              c[at - pos] = c[at - pos]! ^ 0xff;
            }
            pos += c.length;
            res.write(c);
          });
          upRes.on('end', () => res.end());
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
    requests,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
