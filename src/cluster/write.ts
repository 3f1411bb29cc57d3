import { mkdir, rename, writeFile, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { AirlockError } from '../errors.js';
import type { ClusterFile } from './mirror-sets.js';

/** Write each file atomically (temp + rename) into `dir`, creating it. */
export async function writeClusterFiles(dir: string, files: readonly ClusterFile[]): Promise<string[]> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new AirlockError('IO', `cannot create ${dir} for cluster resources (${(e as NodeJS.ErrnoException).code})`);
  }
  const written: string[] = [];
  for (const f of files) {
    const target = path.join(dir, f.name);
    const tmp = `${target}.${process.pid}.tmp`;
    try {
      // names may hold one folder level (registries.d/, keys/)
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(tmp, f.content, { mode: 0o644 });
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw new AirlockError('IO', `cannot write ${target} (${(e as NodeJS.ErrnoException).code})`);
    }
    written.push(target);
  }
  return written;
}
