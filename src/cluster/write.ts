import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { AirlockError } from '../errors.js';
import { writeFileAtomic } from '../layout/writer.js';
import type { ClusterFile } from './mirror-sets.js';

/** Write each file atomically (temp file, fsync, rename) into `dir`, creating it. */
export async function writeClusterFiles(dir: string, files: readonly ClusterFile[]): Promise<string[]> {
  const written: string[] = [];
  for (const f of files) {
    const target = path.join(dir, f.name);
    try {
      // names may hold one folder level (registries.d/, keys/)
      await mkdir(path.dirname(target), { recursive: true });
    } catch (e) {
      throw new AirlockError('IO', `cannot create ${path.dirname(target)} for cluster resources (${(e as NodeJS.ErrnoException).code})`, { cause: e });
    }
    await writeFileAtomic(target, f.content);
    written.push(target);
  }
  return written;
}
