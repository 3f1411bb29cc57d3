#!/usr/bin/env node
// Measure the memory of `airlock serve` while a 1 GiB blob is pushed and pulled.
//   npm run build && node scripts/serve-memory.mjs [SIZE_MIB]
// Starts `airlock serve` in a child process on a temp root, pushes a pseudo-random blob
// generated on the fly (AES-CTR keystream, never held in memory) in one PUT, pulls it back
// with a streaming GET, checks the digest, and prints the server's peak RSS (VmHWM from
// /proc/PID/status) after start, after each push and after the pull. The blob is pushed
// twice: in one PUT, then as one streamed PATCH closed by an empty PUT.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.argv[2] ?? 1024);
const size = sizeMiB * MiB;
const repo = 'memory/test';

/** A deterministic stream of `size` pseudo-random bytes, produced 1 MiB at a time. */
function randomStream() {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(MiB);
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return this.push(null);
      const n = Math.min(MiB, left);
      left -= n;
      this.push(cipher.update(n === MiB ? zeros : zeros.subarray(0, n)));
    },
  });
}

async function vm(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { hwmMiB: (kb('VmHWM') / 1024).toFixed(1), rssMiB: (kb('VmRSS') / 1024).toFixed(1) };
}

function request(url, method, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => resolve(res));
    req.on('error', reject);
    if (body) pipeline(body, req).catch(reject);
    else req.end();
  });
}

async function drain(res) {
  for await (const _ of res) void _;
}

const root = await mkdtemp(join(tmpdir(), 'airlock-serve-memory-'));
const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'airlock.mjs');
const child = spawn(process.execPath, [bin, 'serve', '--root', root, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const base = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(line.trim());
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
  });
  const atStart = await vm(child.pid);

  // the digest first (one pass over the generator, hashing only)
  const h = createHash('sha256');
  for await (const c of randomStream()) h.update(c);
  const digest = `sha256:${h.digest('hex')}`;

  let t = Date.now();
  const post = await request(`${base}/v2/${repo}/blobs/uploads/`, 'POST');
  await drain(post);
  const location = new URL(post.headers.location, base);
  location.searchParams.set('digest', digest);
  const put = await request(location, 'PUT', randomStream(), { 'content-type': 'application/octet-stream', 'content-length': String(size) });
  await drain(put);
  if (put.statusCode !== 201) throw new Error(`PUT answered ${put.statusCode}`);
  const pushSeconds = (Date.now() - t) / 1000;
  const afterPush = await vm(child.pid);

  // the same bytes again as one streamed PATCH and an empty closing PUT (what skopeo does)
  t = Date.now();
  const post2 = await request(`${base}/v2/${repo}-chunked/blobs/uploads/`, 'POST');
  await drain(post2);
  const patch = await request(new URL(post2.headers.location, base), 'PATCH', randomStream(), { 'content-type': 'application/octet-stream', 'content-length': String(size) });
  await drain(patch);
  if (patch.statusCode !== 202) throw new Error(`PATCH answered ${patch.statusCode}`);
  const close = new URL(patch.headers.location, base);
  close.searchParams.set('digest', digest);
  const put2 = await request(close, 'PUT');
  await drain(put2);
  if (put2.statusCode !== 201) throw new Error(`closing PUT answered ${put2.statusCode}`);
  const patchSeconds = (Date.now() - t) / 1000;
  const afterPatch = await vm(child.pid);

  t = Date.now();
  const get = await request(`${base}/v2/${repo}/blobs/${digest}`, 'GET');
  const g = createHash('sha256');
  let got = 0;
  for await (const c of get) {
    g.update(c);
    got += c.length;
  }
  const pulled = `sha256:${g.digest('hex')}`;
  const pullSeconds = (Date.now() - t) / 1000;
  if (pulled !== digest || got !== size) throw new Error(`pulled ${got} bytes hashing to ${pulled}, expected ${size} bytes ${digest}`);
  const afterPull = await vm(child.pid);

  console.log(`blob: ${sizeMiB} MiB ${digest}`);
  console.log(`push (one PUT): ${pushSeconds.toFixed(1)} s (${(sizeMiB / pushSeconds).toFixed(0)} MiB/s), push (streamed PATCH + PUT): ${patchSeconds.toFixed(1)} s, pull: ${pullSeconds.toFixed(1)} s (${(sizeMiB / pullSeconds).toFixed(0)} MiB/s), digest checked`);
  console.log(`server peak RSS (VmHWM): after start ${atStart.hwmMiB} MiB, after PUT ${afterPush.hwmMiB} MiB, after PATCH ${afterPatch.hwmMiB} MiB, after pull ${afterPull.hwmMiB} MiB`);
  console.log(`server RSS now: ${afterPull.rssMiB} MiB`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  await rm(root, { recursive: true, force: true });
}
