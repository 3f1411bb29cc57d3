import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startServer } from '../../src/server/http.js';
import { startDistribution } from './distribution.js';

export type RegistryKind = 'distribution' | 'serve' | 'serve-no-referrers';

export interface TestRegistry {
  kind: RegistryKind;
  host: string;
  /** true when the registry answers the OCI 1.1 referrers API */
  referrersApi: boolean;
  stop(): Promise<void>;
}

/** A real registry for a test: Debian's Distribution 2.8, or airlock's own serve with the referrers API on or off. */
export async function startRegistry(kind: RegistryKind): Promise<TestRegistry> {
  if (kind === 'distribution') {
    const r = await startDistribution();
    return { kind, host: r.host, referrersApi: false, stop: () => r.stop() };
  }
  const root = await mkdtemp(path.join(tmpdir(), 'airlock-serve-'));
  const api = kind === 'serve';
  const s = await startServer({ root, listen: '127.0.0.1:0', referrersApi: api });
  return {
    kind,
    host: s.host,
    referrersApi: api,
    stop: async () => {
      await s.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
