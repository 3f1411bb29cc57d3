import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { AirlockError } from '../errors.js';

/**
 * One writer per storage directory: a writable `airlock serve` or `airlock serve gc`.
 *
 * The per-repository and per-upload mutexes of the directory back end live in one
 * process, and garbage collection must not sweep a blob that a push has just uploaded
 * but not yet referenced from a manifest (the layers go up first, the manifest last). So
 * whoever writes takes `DIR/serve.lock`, created exclusively (O_EXCL) with its pid and
 * host; a second writer is refused with one line that names the holder. A lock left by a
 * process that died (same host, pid gone) is taken over. Read-only servers take no lock:
 * they only read files that appear by rename, and a blob that gc removes is one that no
 * manifest refers to.
 */
export interface RootLock {
  release(): Promise<void>;
}

export type LockHolder = 'serve' | 'gc';

interface LockInfo {
  pid: number;
  host: string;
  holder: LockHolder;
  since: string;
}

export const LOCK_FILE = 'serve.lock';

export async function acquireRootLock(root: string, holder: LockHolder): Promise<RootLock> {
  const file = path.join(root, LOCK_FILE);
  const mine: LockInfo = { pid: process.pid, host: os.hostname(), holder, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(file, `${JSON.stringify(mine)}\n`, { flag: 'wx', mode: 0o644 });
      let released = false;
      return {
        release: async () => {
          if (released) return;
          released = true;
          await fs.rm(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AirlockError('IO', `cannot lock the registry storage ${root}: ${(e as Error).message}; check the path and its permissions`, { cause: e, side: 'local' });
      }
    }
    const other = await readLock(file);
    if (other && isStale(other)) {
      // the holder died without releasing: take the lock over; the exclusive create
      // above decides between two processes doing the same
      await fs.rm(file, { force: true });
      continue;
    }
    if (!other) {
      // being written right now, or unreadable: look again shortly
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const who = other.holder === 'gc' ? 'airlock serve gc' : 'airlock serve';
    const what =
      holder === 'gc'
        ? 'stop it first (garbage collection must not race a push), or run gc while no writable server is running'
        : other.holder === 'gc'
          ? 'wait for the garbage collection to finish'
          : 'one writable server per storage directory; use --read-only for another one';
    throw new AirlockError('USAGE', `${root} is in use by ${who} (pid ${other.pid} on ${other.host}, since ${other.since}): ${what}; if no such process runs, remove ${file}`, {
      side: 'local',
    });
  }
  throw new AirlockError('IO', `cannot lock the registry storage ${root}: ${file} is unreadable or keeps changing; if no airlock serve or gc runs on it, remove it`, { side: 'local' });
}

async function readLock(file: string): Promise<LockInfo | undefined> {
  try {
    const v = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<LockInfo>;
    if (typeof v.pid !== 'number' || typeof v.host !== 'string' || (v.holder !== 'serve' && v.holder !== 'gc')) return undefined;
    return { pid: v.pid, host: v.host, holder: v.holder, since: typeof v.since === 'string' ? v.since : '?' };
  } catch {
    return undefined;
  }
}

/** A lock whose process is gone. Only decidable on the same host; elsewhere it is live. */
function isStale(info: LockInfo): boolean {
  if (info.host !== os.hostname()) return false;
  if (info.pid === process.pid) return false;
  try {
    process.kill(info.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
