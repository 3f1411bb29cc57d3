/**
 * `airlock serve` as a command: prints its address, logs one line per request under
 * --verbose, serves HTTPS with --tls-cert/--tls-key, and stops cleanly when aborted
 * (the bin aborts on SIGINT/SIGTERM).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { blob, pushBlob } from './server-helpers.js';

interface Running {
  url: string;
  stderr: () => string;
  stop: () => Promise<number>;
}

async function serve(args: string[], verbose = false): Promise<Running> {
  const out = new PassThrough();
  const err = new PassThrough();
  let errText = '';
  err.on('data', (c: Buffer) => (errText += c.toString()));
  const ac = new AbortController();
  const done = main([...(verbose ? ['--verbose'] : []), 'serve', ...args], { stdout: out, stderr: err, env: {}, cwd: process.cwd(), isTTY: false, signal: ac.signal });
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
      if (text.includes('\n')) resolve(text.split('\n')[0]!);
    });
    void done.then((code) => reject(new Error(`serve exited with ${code}: ${errText}`)));
  });
  return {
    url,
    stderr: () => errText,
    stop: async () => {
      ac.abort();
      return done;
    },
  };
}

describe('airlock serve (command)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'airlock-serve-cli-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('when started with --verbose on port 0', () => {
    it('prints the address on stdout, logs each request on stderr, and exits 0 when aborted', async () => {
      const s = await serve(['--root', path.join(dir, 'store'), '--listen', '127.0.0.1:0'], true);
      expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const b = blob('via the command');
      expect((await pushBlob(s.url, 'cli/app', b)).status).toBe(201);
      expect((await fetch(`${s.url}/v2/cli/app/blobs/${b.digest}`)).status).toBe(200);
      const code = await s.stop();
      expect(code).toBe(0);
      const lines = s.stderr().trim().split('\n');
      expect(lines[0]).toBe(`listening on ${s.url} (storage ${path.join(dir, 'store')}, referrers API on)`);
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1 GET /v2/cli/app/blobs/${b.digest} 200 \\d+ms$`)));
      expect(lines).toContainEqual(expect.stringMatching(/^127\.0\.0\.1 PUT \/v2\/cli\/app\/blobs\/uploads\/[0-9a-f-]+\?digest=sha256(?::|%3A)[0-9a-f]{64} 201 \d+ms$/));
      expect(lines[lines.length - 1]).toBe('stopped');
      // the storage outlives the process
      expect(await fs.readFile(path.join(dir, 'store', 'blobs', 'sha256', b.digest.slice(7)))).toEqual(b.bytes);
    });
  });

  describe('when the flags are wrong', () => {
    it('exits 2 with one line for a bad --listen', async () => {
      const err = new PassThrough();
      let text = '';
      err.on('data', (c: Buffer) => (text += c.toString()));
      const code = await main(['serve', '--root', dir, '--listen', 'nowhere'], { stdout: new PassThrough(), stderr: err, env: {}, cwd: process.cwd(), isTTY: false });
      expect(code).toBe(2);
      expect(text).toBe('airlock: --listen "nowhere" is not HOST:PORT (for example 127.0.0.1:5000, or port 0 for any free port)\n');
    });

    it('exits 2 when only one of --tls-cert and --tls-key is given', async () => {
      const code = await main(['serve', '--root', dir, '--tls-cert', 'x.pem'], { stdout: new PassThrough(), stderr: new PassThrough(), env: {}, cwd: process.cwd(), isTTY: false });
      expect(code).toBe(2);
    });
  });

  describe('when asked to listen beyond loopback', () => {
    it('refuses without authentication: exit 2, one line, nothing created', async () => {
      const err = new PassThrough();
      let text = '';
      err.on('data', (c: Buffer) => (text += c.toString()));
      const root = path.join(dir, 'public-never');
      const code = await main(['serve', '--root', root, '--listen', '0.0.0.0:0'], { stdout: new PassThrough(), stderr: err, env: {}, cwd: process.cwd(), isTTY: false });
      expect(code).toBe(2);
      expect(text).toBe(
        'airlock: refusing to listen on 0.0.0.0:0 without authentication: anyone who can reach it could push and delete images; give --htpasswd FILE (with --tls-cert/--tls-key), listen on 127.0.0.1, or accept the risk with --insecure-public\n',
      );
      await expect(fs.access(root)).rejects.toThrow();
    });

    it('starts with --insecure-public and warns on stderr, even under --quiet', async () => {
      const out = new PassThrough();
      const err = new PassThrough();
      let text = '';
      err.on('data', (c: Buffer) => (text += c.toString()));
      const ac = new AbortController();
      const done = main(['--quiet', 'serve', '--root', path.join(dir, 'public'), '--listen', '0.0.0.0:0', '--insecure-public'], { stdout: out, stderr: err, env: {}, cwd: process.cwd(), isTTY: false, signal: ac.signal });
      const url = await new Promise<string>((resolve) => out.once('data', (c: Buffer) => resolve(c.toString().trim())));
      expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
      ac.abort();
      expect(await done).toBe(0);
      expect(text).toMatch(/^airlock: warning: 0\.0\.0\.0:0 is reachable from the network with no authentication \(--insecure-public\): anyone who reaches it can push, overwrite and delete images\n$/);
    });
  });

  describe('when limits are given', () => {
    it('exits 2 with one line for a value that is not a size, a duration or a count', async () => {
      for (const [flag, value, message] of [
        ['--max-blob-size', 'lots', '--max-blob-size "lots" is not a size; write it like 1024, 512MiB or 32GiB'],
        ['--upload-max-age', 'forever', '--upload-max-age "forever" is not a duration; write it like 30s, 15m, 24h or 7d'],
        ['--max-uploads', '0', '--max-uploads "0" is not a positive whole number'],
      ]) {
        const err = new PassThrough();
        let text = '';
        err.on('data', (c: Buffer) => (text += c.toString()));
        const code = await main(['serve', '--root', path.join(dir, 'limits'), '--listen', '127.0.0.1:0', flag!, value!], { stdout: new PassThrough(), stderr: err, env: {}, cwd: process.cwd(), isTTY: false });
        expect(code).toBe(2);
        expect(text).toBe(`airlock: ${message}\n`);
      }
    });

    it('documents every limit and its default in --help', async () => {
      const out = new PassThrough();
      let text = '';
      out.on('data', (c: Buffer) => (text += c.toString()));
      expect(await main(['serve', '--help'], { stdout: out, stderr: new PassThrough(), env: {}, cwd: process.cwd(), isTTY: false })).toBe(0);
      const flat = text.replace(/\s+/g, ' ');
      for (const f of ['--max-blob-size <size>', '(default: "32GiB")', '--max-uploads <n>', '(default: "256")', '--upload-max-age <duration>', '(default: "24h")', '--body-timeout <duration>', '(default: "60s")', '--min-body-rate <size>', '(default: "1KiB")', '--idle-timeout <duration>', '(default: "30s")', '--htpasswd <file>', '--htpasswd-readonly <file>', '--access <file>', '--insecure-public', '--no-sparse-index', 'airlock serve gc --root DIR']) {
        expect(flat).toContain(f);
      }
    });
  });

  describe('when given a TLS certificate', () => {
    it('serves the API over HTTPS', async () => {
      const cert = path.join(dir, 'cert.pem');
      const key = path.join(dir, 'key.pem');
      await promisify(execFile)('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
      ]);
      const s = await serve(['--root', path.join(dir, 'tls'), '--listen', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key]);
      try {
        expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        const ca = await fs.readFile(cert);
        const status = await new Promise<{ code: number; api: string | string[] | undefined }>((resolve, reject) => {
          https.get(`${s.url}/v2/`, { ca }, (res) => {
            res.resume();
            resolve({ code: res.statusCode ?? 0, api: res.headers['docker-distribution-api-version'] });
          }).on('error', reject);
        });
        expect(status).toEqual({ code: 200, api: 'registry/2.0' });
      } finally {
        expect(await s.stop()).toBe(0);
      }
    });
  });
});
