/**
 * `airlock serve` under load it must bound: upload sessions (count, age, size), chunks that
 * disagree with their Content-Range, slow request bodies, idle connections and clients that
 * stop reading. Each answer is observed on the wire and on disk.
 */
import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../src/server/limits.js';
import { blob, errorCode, pushBlob, startTestServer, type TestServer } from './server-helpers.js';

async function startSession(base: string, repo: string): Promise<URL> {
  const r = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(r.status).toBe(202);
  return new URL(r.headers.get('location')!, base);
}

/** A body sent with chunked transfer encoding (no Content-Length), in the pieces given. */
function chunked(...pieces: Buffer[]): { body: ReadableStream; duplex: 'half' } {
  return { body: Readable.toWeb(Readable.from(pieces)) as ReadableStream, duplex: 'half' };
}

async function uploadFiles(root: string): Promise<string[]> {
  return (await fs.readdir(path.join(root, 'uploads'))).sort();
}

async function until(what: string, ok: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function age(root: string, id: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  for (const f of [id, `${id}.repo`]) await fs.utimes(path.join(root, 'uploads', f), t, t);
}

describe('airlock serve limits', () => {
  describe('when clients open upload sessions without end', () => {
    let s: TestServer;
    beforeAll(async () => {
      s = await startTestServer();
    });
    afterAll(async () => {
      await s.dispose();
    });

    it('keeps at most --max-uploads sessions (default 256) and answers the rest 429 TOOMANYREQUESTS', async () => {
      const statuses: number[] = [];
      let refused: Response | undefined;
      for (let i = 0; i < 1000; i += 25) {
        const batch = await Promise.all(Array.from({ length: 25 }, () => fetch(`${s.url}/v2/flood/app/blobs/uploads/`, { method: 'POST' })));
        for (const r of batch) {
          statuses.push(r.status);
          if (r.status === 429 && !refused) refused = r;
          else await r.arrayBuffer();
        }
      }
      expect(statuses.filter((c) => c === 202)).toHaveLength(DEFAULT_LIMITS.maxUploads);
      expect(statuses.filter((c) => c === 429)).toHaveLength(1000 - DEFAULT_LIMITS.maxUploads);
      expect(refused!.headers.get('retry-after')).toBe('10');
      expect(await errorCode(refused!)).toBe('TOOMANYREQUESTS');
      // two files per session, nothing else
      expect(await uploadFiles(s.root)).toHaveLength(2 * DEFAULT_LIMITS.maxUploads);
    });

    it('opens a session again once one is cancelled', async () => {
      const [first] = await uploadFiles(s.root);
      const id = first!.replace(/\.repo$/, '');
      expect((await fetch(`${s.url}/v2/flood/app/blobs/uploads/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect((await fetch(`${s.url}/v2/flood/app/blobs/uploads/`, { method: 'POST' })).status).toBe(202);
      expect((await fetch(`${s.url}/v2/flood/app/blobs/uploads/`, { method: 'POST' })).status).toBe(429);
    });
  });

  describe('when upload sessions go stale', () => {
    it('removes sessions idle past --upload-max-age when the server starts, and keeps the others', async () => {
      let s = await startTestServer();
      try {
        const stale = await startSession(s.url, 'stale/app');
        const chunk = Buffer.alloc(64 * 1024 * 1024, 7);
        expect((await fetch(stale, { method: 'PATCH', body: chunk })).status).toBe(202);
        const fresh = await startSession(s.url, 'stale/app');
        await s.close();
        await age(s.root, path.basename(stale.pathname), DEFAULT_LIMITS.uploadMaxAgeMs + 60_000);
        s = await s.restart();
        const moved = (u: URL): URL => new URL(u.pathname, s.url);
        const gone = await fetch(moved(stale));
        expect(gone.status).toBe(404);
        expect(await errorCode(gone)).toBe('BLOB_UPLOAD_UNKNOWN');
        expect((await fetch(moved(fresh))).status).toBe(204);
        expect(await uploadFiles(s.root)).toEqual([path.basename(fresh.pathname), `${path.basename(fresh.pathname)}.repo`].sort());
        expect(s.logs).toContain(`removed 1 upload session(s) idle for longer than ${DEFAULT_LIMITS.uploadMaxAgeMs / 1000}s`);
      } finally {
        await s.dispose();
      }
    });

    it('removes them on a timer while it runs', async () => {
      const s = await startTestServer({ limits: { uploadMaxAgeMs: 60_000, uploadSweepIntervalMs: 50 } });
      try {
        const stale = await startSession(s.url, 'timer/app');
        expect((await fetch(stale, { method: 'PATCH', body: Buffer.alloc(4096, 1) })).status).toBe(202);
        const fresh = await startSession(s.url, 'timer/app');
        await age(s.root, path.basename(stale.pathname), 120_000);
        await until('the stale session is gone', async () => (await uploadFiles(s.root)).length === 2);
        expect((await fetch(stale)).status).toBe(404);
        expect((await fetch(fresh)).status).toBe(204);
      } finally {
        await s.dispose();
      }
    });
  });

  describe('when an upload grows past --max-blob-size', () => {
    let s: TestServer;
    beforeAll(async () => {
      s = await startTestServer({ limits: { maxBlobBytes: 1000 } });
    });
    afterAll(async () => {
      await s.dispose();
    });

    it('refuses a declared Content-Length over the limit with 413 before reading, and keeps the session as it was', async () => {
      const loc = await startSession(s.url, 'big/app');
      expect((await fetch(loc, { method: 'PATCH', body: Buffer.alloc(600, 1) })).status).toBe(202);
      const r = await fetch(loc, { method: 'PATCH', body: Buffer.alloc(600, 2) });
      expect(r.status).toBe(413);
      expect(await errorCode(r)).toBe('SIZE_INVALID');
      expect((await fetch(loc)).headers.get('range')).toBe('0-599');
    });

    it('cuts a streamed chunk at the limit and undoes it', async () => {
      const loc = await startSession(s.url, 'big/app');
      expect((await fetch(loc, { method: 'PATCH', body: Buffer.alloc(300, 1) })).status).toBe(202);
      const r = await fetch(loc, { method: 'PATCH', ...chunked(Buffer.alloc(500, 2), Buffer.alloc(500, 3)) });
      expect(r.status).toBe(413);
      expect((await fetch(loc)).headers.get('range')).toBe('0-299');
      // the session is still good: finish it within the limit
      const rest = Buffer.alloc(200, 4);
      const whole = blob(Buffer.concat([Buffer.alloc(300, 1), rest]));
      const fin = new URL(loc);
      fin.searchParams.set('digest', whole.digest);
      expect((await fetch(fin, { method: 'PUT', body: rest })).status).toBe(201);
      expect(Buffer.from(await (await fetch(`${s.url}/v2/big/app/blobs/${whole.digest}`)).arrayBuffer())).toEqual(whole.bytes);
    });

    it('refuses a single-request upload over the limit and stores nothing', async () => {
      const b = blob(Buffer.alloc(1001, 5));
      const r = await fetch(`${s.url}/v2/big/app/blobs/uploads/?digest=${b.digest}`, { method: 'POST', body: b.bytes });
      expect(r.status).toBe(413);
      await expect(fs.access(path.join(s.root, 'blobs', 'sha256', b.digest.slice(7)))).rejects.toThrow();
      expect(await uploadFiles(s.root)).toHaveLength(2); // the session of the first case, still open
    });
  });

  describe('when a PATCH disagrees with its Content-Range', () => {
    let s: TestServer;
    let loc: URL;
    beforeAll(async () => {
      s = await startTestServer();
      loc = await startSession(s.url, 'range/app');
    });
    afterAll(async () => {
      await s.dispose();
    });

    it('refuses a body shorter than the range with 400 BLOB_UPLOAD_INVALID and keeps none of it', async () => {
      const r = await fetch(loc, { method: 'PATCH', headers: { 'content-range': '0-9' }, ...chunked(Buffer.from('01234')) });
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('BLOB_UPLOAD_INVALID');
      expect((await fetch(loc)).headers.get('range')).toBe('0-0');
      expect((await fs.stat(path.join(s.root, 'uploads', path.basename(loc.pathname)))).size).toBe(0);
    });

    it('refuses a body longer than the range with 400 and keeps none of it', async () => {
      const r = await fetch(loc, { method: 'PATCH', headers: { 'content-range': '0-9' }, ...chunked(Buffer.from('0123456789'), Buffer.from('abcde')) });
      expect(r.status).toBe(400);
      expect((await fs.stat(path.join(s.root, 'uploads', path.basename(loc.pathname)))).size).toBe(0);
    });

    it('refuses a Content-Length that is not the range length before reading, and a range that ends before it starts with 416', async () => {
      const r = await fetch(loc, { method: 'PATCH', headers: { 'content-range': '0-9' }, body: Buffer.from('01234') });
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('BLOB_UPLOAD_INVALID');
      const back = await fetch(loc, { method: 'PATCH', headers: { 'content-range': '9-0' }, body: Buffer.from('0123456789') });
      expect(back.status).toBe(416);
    });

    it('accepts the chunk that matches, and the PUT that closes with the last range', async () => {
      const p = await fetch(loc, { method: 'PATCH', headers: { 'content-range': '0-9' }, ...chunked(Buffer.from('01234'), Buffer.from('56789')) });
      expect(p.status).toBe(202);
      expect(p.headers.get('range')).toBe('0-9');
      const whole = blob('0123456789abc');
      const fin = new URL(loc);
      fin.searchParams.set('digest', whole.digest);
      const wrong = await fetch(fin, { method: 'PUT', headers: { 'content-range': '10-14' }, body: Buffer.from('abc') });
      expect(wrong.status).toBe(400);
      const put = await fetch(fin, { method: 'PUT', headers: { 'content-range': '10-12' }, body: Buffer.from('abc') });
      expect(put.status).toBe(201);
    });
  });

  describe('when clients send bodies too slowly or leave connections idle', () => {
    let s: TestServer;
    beforeAll(async () => {
      s = await startTestServer({ limits: { bodyTimeoutMs: 400, minBodyRate: 1024, idleTimeoutMs: 400 } });
    });
    afterAll(async () => {
      await s.dispose();
    });

    /** A raw connection; resolves `closed` when the server closes it. */
    function connect(): { socket: net.Socket; closed: Promise<void> } {
      const u = new URL(s.url);
      const socket = net.connect(Number(u.port), u.hostname);
      socket.on('error', () => undefined);
      socket.resume();
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      return { socket, closed };
    }

    it('closes 40 connections whose bodies trickle or stall, and keeps serving', async () => {
      const ids = await Promise.all(Array.from({ length: 40 }, () => startSession(s.url, 'slow/app')));
      const conns = ids.map((loc, i) => {
        const c = connect();
        c.socket.write(`PATCH ${loc.pathname} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\nab`);
        // half trickle a byte every 100 ms (10 B/s), half send nothing more
        const t = i % 2 === 0 ? setInterval(() => c.socket.writable && c.socket.write('x'), 100) : undefined;
        void c.closed.then(() => clearInterval(t));
        return c;
      });
      await Promise.race([
        Promise.all(conns.map((c) => c.closed)),
        new Promise((_, reject) => setTimeout(() => reject(new Error('slow bodies still open after 20 s')), 20_000)),
      ]);
      expect(conns.every((c) => c.socket.destroyed)).toBe(true);
      await until('every cut is logged', () => s.logs.filter((l) => l.endsWith('ms') && l.includes('(body too slow, connection closed)')).length === 40);
      expect((await fetch(`${s.url}/v2/`)).status).toBe(200);
    });

    it('lets a body at a healthy rate through whole, however long it is', async () => {
      const b = blob(Buffer.alloc(8 * 1024 * 1024, 9));
      expect((await pushBlob(s.url, 'slow/fast', b)).status).toBe(201);
    });

    it('closes a connection that never finishes its request headers, and an idle keep-alive connection', async () => {
      const half = connect();
      half.socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
      const idle = connect();
      idle.socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
      let answer = '';
      idle.socket.on('data', (c: Buffer) => (answer += c.toString()));
      await Promise.race([
        Promise.all([half.closed, idle.closed]),
        new Promise((_, reject) => setTimeout(() => reject(new Error('idle connections still open after 20 s')), 20_000)),
      ]);
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    });

    it('closes the connection of a client that stops reading a blob', async () => {
      const b = blob(Buffer.alloc(64 * 1024 * 1024, 3));
      expect((await pushBlob(s.url, 'slow/reader', b)).status).toBe(201);
      const c = connect();
      c.socket.pause();
      c.socket.removeAllListeners('data');
      c.socket.write(`GET /v2/slow/reader/blobs/${b.digest} HTTP/1.1\r\nHost: x\r\n\r\n`);
      // not reading: the server's writes block until its send timeout cuts the response
      await until('the server cuts the response', () => s.logs.some((l) => l.includes(`GET /v2/slow/reader/blobs/${b.digest} 200 (cut short)`)), 20_000);
      c.socket.resume();
      await c.closed;
      expect(c.socket.bytesRead).toBeLessThan(b.size);
    });
  });
});
