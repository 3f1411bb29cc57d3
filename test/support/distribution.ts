import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startTokenServer, type TokenServer } from './token-server.js';

export const DISTRIBUTION_BIN = '/usr/bin/docker-registry';

/**
 * The test rig: Debian's docker-registry (CNCF Distribution 2.8) on
 * 127.0.0.1:<free port>, filesystem storage in a temp directory, deletes
 * enabled, optionally behind token or htpasswd auth.
 */
export interface RunningRegistry {
  /** 127.0.0.1:PORT */
  host: string;
  /** http://127.0.0.1:PORT */
  url: string;
  dir: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  auth?: 'none' | 'token' | 'htpasswd';
  /** users for token/htpasswd auth; default { alice: 'wonderland' } */
  users?: Record<string, string>;
  /** token mode: restrict what the token server grants */
  allow?: (user: string, type: string, name: string, action: string) => boolean;
  /** token mode: identity (refresh) tokens the token server accepts, mapped to users */
  refreshTokens?: Record<string, string>;
  /** serve HTTPS with this certificate chain and key (PEM files); `url` is then https:// */
  tls?: { certFile: string; keyFile: string };
}

export type StartedRegistry = RunningRegistry & {
  tokenServer?: TokenServer;
  users: Record<string, string>;
  /** the registry's storage root: `<root>/docker/registry/v2/blobs/sha256/<xx>/<hex>/data` */
  storageDir: string;
  /** the last lines the registry logged, for failure messages */
  logs(): string[];
};

export function requireDistribution(): void {
  if (!existsSync(DISTRIBUTION_BIN)) {
    throw new Error(`${DISTRIBUTION_BIN} is missing; install it: apt-get install docker-registry`);
  }
}

/** htpasswd mode needs bcrypt hashes; we use apache2-utils' htpasswd rather than a new dependency. */
export function htpasswdAvailable(): boolean {
  try {
    execFileSync('htpasswd', ['-nbB', 'probe', 'probe'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function startDistribution(opts: StartOptions = {}): Promise<StartedRegistry> {
  requireDistribution();
  const auth = opts.auth ?? 'none';
  const users = opts.users ?? { alice: 'wonderland' };
  const dir = await mkdtemp(join(tmpdir(), 'airlock-registry-'));
  const storageDir = join(dir, 'storage');
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;
  try {
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'info', formatter: 'text', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: storageDir }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
      http: {
        addr: '127.0.0.1:0',
        secret: 'airlock-test-secret',
        ...(opts.tls ? { tls: { certificate: opts.tls.certFile, key: opts.tls.keyFile } } : {}),
      },
    };
    if (auth === 'token') {
      tokenServer = await startTokenServer({
        dir,
        users,
        ...(opts.allow ? { allow: opts.allow } : {}),
        ...(opts.refreshTokens ? { refreshTokens: opts.refreshTokens } : {}),
      });
      config.auth = {
        token: {
          realm: tokenServer.realm,
          service: tokenServer.service,
          issuer: tokenServer.issuer,
          rootcertbundle: tokenServer.certFile,
        },
      };
    } else if (auth === 'htpasswd') {
      if (!htpasswdAvailable()) throw new Error('htpasswd mode needs the htpasswd tool (apt-get install apache2-utils)');
      const lines = Object.entries(users).map(([u, p]) => execFileSync('htpasswd', ['-nbB', u, p], { encoding: 'utf8' }).trim());
      const file = join(dir, 'htpasswd');
      await writeFile(file, `${lines.join('\n')}\n`);
      config.auth = { htpasswd: { realm: 'airlock-test', path: file } };
    }
    const configFile = join(dir, 'config.yml');
    await writeFile(configFile, stringify(config));
    const log: string[] = [];
    child = spawn(DISTRIBUTION_BIN, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = child;
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      const onData = (d: Buffer): void => {
        buf += d.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          log.push(line);
          if (log.length > 200) log.shift();
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(line);
          if (m) resolve(Number(m[1]));
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`docker-registry exited (${code}) before listening:\n${log.slice(-10).join('\n')}`)));
      proc.once('error', reject);
    });
    const host = `127.0.0.1:${port}`;
    let stopped = false;
    return {
      host,
      url: `${opts.tls ? 'https' : 'http'}://${host}`,
      dir,
      storageDir,
      users,
      ...(tokenServer ? { tokenServer } : {}),
      logs: () => [...log],
      async stop(): Promise<void> {
        if (stopped) return;
        stopped = true;
        await stopChild(proc);
        await tokenServer?.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    if (child) await stopChild(child);
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
