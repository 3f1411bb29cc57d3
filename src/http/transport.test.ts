import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AirlockError, isAirlockError } from '../errors.js';
import { HttpTransport, isRetryableStatus, isTransientError, readBody } from './transport.js';

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

async function listen(s: Server): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function close(s: Server | undefined): Promise<void> {
  if (!s) return;
  s.closeAllConnections();
  await new Promise<void>((resolve) => s.close(() => resolve()));
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return isAirlockError(e) ? e.code : `not-airlock: ${(e as Error).message}`;
  }
  return undefined;
}

describe('HttpTransport', () => {
  let server: Server;
  let host: string;
  const handlers = new Map<string, Handler>();
  const counts = new Map<string, number>();
  const http = new HttpTransport({ backoffMs: 1, retries: 3 });

  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      const h = handlers.get(path);
      if (h) h(req, res, n);
      else res.writeHead(404).end();
    });
    host = await listen(server);
  });
  afterAll(async () => {
    await http.close();
    await close(server);
  });

  const url = (p: string): URL => new URL(`http://${host}${p}`);

  describe('when the connection drops', () => {
    it('retries and returns the later answer', async () => {
      handlers.set('/reset', (req, res, n) => {
        if (n === 1) req.socket.destroy();
        else res.end('ok');
      });
      const res = await http.request({ method: 'GET', url: url('/reset') });
      expect(res.status).toBe(200);
      expect((await readBody(res, 100)).toString()).toBe('ok');
      expect(counts.get('/reset')).toBe(2);
    });
  });

  describe('when the server asks to retry later', () => {
    it('honours Retry-After given as an HTTP date and as 408', async () => {
      handlers.set('/date', (_req, res, n) => {
        if (n === 1) res.writeHead(429, { 'retry-after': new Date(Date.now() - 1000).toUTCString() }).end();
        else if (n === 2) res.writeHead(408).end();
        else res.end('late');
      });
      const res = await http.request({ method: 'GET', url: url('/date') });
      expect((await readBody(res, 100)).toString()).toBe('late');
      expect(counts.get('/date')).toBe(3);
    });
    it('does not retry a streamed body it cannot send again', async () => {
      handlers.set('/stream', (req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(503).end());
      });
      const res = await http.request({ method: 'PUT', url: url('/stream'), body: Readable.from([Buffer.from('x')]) });
      expect(res.status).toBe(503);
      await readBody(res, 100);
      expect(counts.get('/stream')).toBe(1);
    });
    it('gives back a Retry-After longer than it is willing to wait', async () => {
      const patient = new HttpTransport({ backoffMs: 1, maxRetryAfterMs: 1000 });
      handlers.set('/long', (_req, res) => res.writeHead(429, { 'retry-after': '3600' }).end());
      try {
        const res = await patient.request({ method: 'GET', url: url('/long') });
        expect(res.status).toBe(429);
        await readBody(res, 100);
        expect(counts.get('/long')).toBe(1);
      } finally {
        await patient.close();
      }
    });
  });

  describe('when following redirects', () => {
    it('turns a POST answered 303 into a GET', async () => {
      handlers.set('/post', (_req, res) => res.writeHead(303, { location: '/target' }).end());
      let method = '';
      handlers.set('/target', (req, res) => {
        method = req.method ?? '';
        res.end('t');
      });
      const res = await http.request({ method: 'POST', url: url('/post'), body: Buffer.from('x'), followRedirects: true });
      expect((await readBody(res, 100)).toString()).toBe('t');
      expect(method).toBe('GET');
      expect(res.url.pathname).toBe('/target');
    });
    it('stops after five redirects with a REGISTRY error', async () => {
      handlers.set('/loop', (_req, res) => res.writeHead(302, { location: '/loop' }).end());
      expect(await codeOf(http.request({ method: 'GET', url: url('/loop'), followRedirects: true }))).toBe('REGISTRY');
    });
  });

  describe('when nothing listens or the caller cancels', () => {
    it('fails with NETWORK after retries', async () => {
      const probe = createServer();
      const dead = await listen(probe);
      await close(probe);
      expect(await codeOf(http.request({ method: 'GET', url: new URL(`http://${dead}/`) }))).toBe('NETWORK');
    });
    it('fails with ABORTED', async () => {
      handlers.set('/slow', () => undefined);
      const ac = new AbortController();
      const p = http.request({ method: 'GET', url: url('/slow'), signal: ac.signal });
      setImmediate(() => ac.abort());
      expect(await codeOf(p)).toBe('ABORTED');
    });
  });

  describe('when the server uses TLS with a private CA', () => {
    let dir: string;
    let tls: Server;
    let tlsHost: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'airlock-tls-'));
      await promisify(execFile)('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ]);
      tls = createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, (_req, res) => res.end('secure'));
      tlsHost = await listen(tls);
    });
    afterAll(async () => {
      await close(tls);
      if (dir) await rm(dir, { recursive: true, force: true });
    });
    it('refuses the certificate without the CA file and trusts it with --ca-file', async () => {
      const plain = new HttpTransport({ retries: 0 });
      const withCa = new HttpTransport({ retries: 0, caFile: join(dir, 'cert.pem') });
      try {
        const p = plain.request({ method: 'GET', url: new URL(`https://${tlsHost}/`) });
        expect(await codeOf(p)).toBe('NETWORK');
        await p.catch((e: Error) => expect(e.message).toContain('--ca-file'));
        const res = await withCa.request({ method: 'GET', url: new URL(`https://${tlsHost}/`) });
        expect((await readBody(res, 100)).toString()).toBe('secure');
      } finally {
        await plain.close();
        await withCa.close();
      }
    });
  });

  describe('when a caller retries at a higher level (resumed bodies, uploads)', () => {
    it('tells transient connection and body failures from our own checks and aborts', () => {
      const undiciLike = (code: string): Error => Object.assign(new Error(code), { code });
      expect(isTransientError(undiciLike('UND_ERR_SOCKET'))).toBe(true);
      expect(isTransientError(undiciLike('UND_ERR_BODY_TIMEOUT'))).toBe(true);
      expect(isTransientError(undiciLike('ERR_STREAM_PREMATURE_CLOSE'))).toBe(true);
      expect(isTransientError(new Error('wrapped', { cause: undiciLike('ECONNRESET') }))).toBe(true);
      expect(isTransientError(new AirlockError('DIGEST_MISMATCH', 'x'))).toBe(false);
      expect(isTransientError(new AirlockError('SIZE_MISMATCH', 'x'))).toBe(false);
      expect(isTransientError(new AirlockError('ABORTED', 'x'))).toBe(false);
      expect(isTransientError(Object.assign(new Error('aborted'), { name: 'AbortError' }))).toBe(false);
      expect(isTransientError(new Error('no code'))).toBe(false);
      expect([429, 500, 502, 503, 504, 408].every(isRetryableStatus)).toBe(true);
      expect([400, 401, 404, 416, 501].some(isRetryableStatus)).toBe(false);
    });

    it('pauses for Retry-After when given, and stops the pause on abort', async () => {
      const t = new HttpTransport({ backoffMs: 10_000, retries: 2 });
      try {
        expect(t.retries).toBe(2);
        // a Retry-After date in the past means at once, not the 10 s backoff
        await t.pause(0, { retryAfter: new Date(Date.now() - 5000).toUTCString() });
        const ac = new AbortController();
        const p = t.pause(0, { signal: ac.signal });
        ac.abort();
        expect(await codeOf(p)).toBe('ABORTED');
      } finally {
        await t.close();
      }
    });
  });
});
