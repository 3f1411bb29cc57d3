import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/registry/client.js';
import { buildFixtures, pushStore } from './support/fixtures/index.js';
import { startRegistry, type TestRegistry } from './support/registries.js';

const ROOT = path.join(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'airlock.mjs');
const ENV = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `airlock ARGS` in a child process, through bash when a shell prefix (ulimit) is given. */
function airlock(args: string[], opts: { cwd: string; ulimitKiB?: number }): Promise<Run> {
  const [cmd, argv] =
    opts.ulimitKiB === undefined
      ? [process.execPath, [BIN, ...args]]
      : // bash's `ulimit -f` counts 1024-byte blocks; the limit is RLIMIT_FSIZE for the exec'd node
        ['bash', ['-c', `ulimit -f ${opts.ulimitKiB} && exec "$0" "$@"`, process.execPath, BIN, ...args]];
  const child = spawn(cmd, argv as string[], { cwd: opts.cwd, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A tmpfs needs root (CAP_SYS_ADMIN); where the tests run unprivileged only the file-size limit is tried. */
function tryMountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A full disk during pack: the archive cannot be finished, so pack must fail with exit 1 and
 * one line that names the file and the reason (ENOSPC on a full file system, EFBIG past a
 * file-size limit), and leave neither FILE nor FILE.partial (nor a sidecar) behind.
 */
describe('pack onto a full disk', () => {
  let src: TestRegistry;
  let dir: string;
  let cfg: string;
  let ref: string;
  let fullSize: number;
  let mounted: string | undefined;

  beforeAll(async () => {
    if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
    }
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-full-disk-'));
    src = await startRegistry('serve');
    const client = new RegistryClient({ plainHttp: () => true });
    try {
      const fx = await buildFixtures({ seed: 'full-disk', registry: src.host, repository: 'team/app' });
      await pushStore(fx.store, client.repository(src.host, 'team/app'));
    } finally {
      await client.close();
    }
    cfg = path.join(dir, 'set.yaml');
    await writeFile(cfg, ['apiVersion: airlock.dev/v1alpha1', 'kind: ImageSet', 'registries: { "*": { plainHTTP: true } }', 'trust: { redhat: false }', 'attachments: all', ''].join('\n'));
    ref = `${src.host}/team/app:multi`;
    // control: with room, the same pack succeeds, and the archive is larger than the room we leave below
    const ok = await mkdtemp(path.join(dir, 'ok-'));
    const r = await airlock(['pack', '--config', cfg, ref, '-o', 'set.tar'], { cwd: ok });
    expect(r.code, r.stderr).toBe(0);
    fullSize = (await stat(path.join(ok, 'set.tar'))).size;
    expect(fullSize).toBeGreaterThan(32 * 1024);
  }, 120_000);

  afterAll(async () => {
    if (mounted) execFileSync('umount', [mounted], { stdio: 'ignore' });
    await src?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function expectCleanFailure(r: Run, out: string, reason: RegExp): void {
    expect(r.signal, 'killed by a signal (SIGXFSZ?) instead of failing cleanly').toBeNull();
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('airlock: '));
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(out);
    expect(lines[0]).toMatch(reason);
    expect(r.stdout).toBe('');
  }

  describe('when a file-size limit (RLIMIT_FSIZE) stops the archive', () => {
    it('exits 1 with one line naming the file and EFBIG, leaving no FILE and no FILE.partial', async () => {
      const cwd = await mkdtemp(path.join(dir, 'fsize-'));
      const out = path.join(cwd, 'set.tar');
      const r = await airlock(['pack', '--config', cfg, ref, '-o', out], { cwd, ulimitKiB: 16 });
      expectCleanFailure(r, out, /EFBIG/);
      expect(await readdir(cwd)).toEqual([]);
    }, 60_000);
  });

  describe('when the file system fills up (a 16 KiB tmpfs)', () => {
    it('exits 1 with one line naming the file and ENOSPC, leaving no FILE and no FILE.partial', async (ctx) => {
      const mnt = path.join(dir, 'tmpfs');
      await mkdir(mnt);
      if (!tryMountTmpfs(mnt, '16k')) {
        ctx.skip('mount -t tmpfs needs root; the file-size limit case covers this machine');
        return;
      }
      mounted = mnt;
      const out = path.join(mnt, 'set.tar');
      const r = await airlock(['pack', '--config', cfg, ref, '-o', out], { cwd: mnt });
      expectCleanFailure(r, out, /ENOSPC/);
      expect(await readdir(mnt)).toEqual([]);
      // and with room it works: the failure was the disk, not the pack
      execFileSync('mount', ['-o', 'remount,size=4m', mnt], { stdio: 'ignore' });
      const again = await airlock(['pack', '--config', cfg, ref, '-o', out], { cwd: mnt });
      expect(again.code, again.stderr).toBe(0);
      expect((await stat(out)).size).toBe(fullSize);
      expect((await readdir(mnt)).sort()).toEqual(['set.tar', 'set.tar.sha256']);
    }, 60_000);
  });
});
