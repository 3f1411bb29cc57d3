import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveReader } from '../src/layout/reader.js';

const run = promisify(execFile);

/** open, then the checks verify/unpack make on the layout: graph and blob digests */
async function readFully(file: string): Promise<void> {
  const r = await ArchiveReader.open(file);
  try {
    await r.verifyGraph();
    await r.verifyBlobs();
  } finally {
    await r.close();
  }
}

let dir: string;
let listing: [string, string][];
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'airlock-hostile-'));
  const script = path.join(import.meta.dirname, '..', 'scripts', 'hostile-archives.mjs');
  const { stdout } = await run(process.execPath, [script, dir]);
  listing = stdout
    .trim()
    .split('\n')
    .map((l) => l.split('\t') as [string, string]);
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('scripts/hostile-archives.mjs', () => {
  it('writes good.tar, which the reader accepts, and at least 20 hostile archives', async () => {
    expect(listing.map(([n]) => n)).toContain('good.tar');
    expect(listing.length).toBeGreaterThanOrEqual(21);
    await readFully(path.join(dir, 'good.tar'));
  });

  it('every other archive is refused with ARCHIVE and the message the script announces', async () => {
    const outcomes: string[] = [];
    for (const [name, expected] of listing) {
      if (name === 'good.tar') continue;
      const e = await readFully(path.join(dir, name)).then(
        () => undefined,
        (x: unknown) => x as { code?: string; message?: string },
      );
      outcomes.push(`${name}: ${e?.code} ${e?.message?.includes(expected) ? 'names the problem' : `says "${e?.message}"`}`);
    }
    expect(outcomes).toEqual(listing.filter(([n]) => n !== 'good.tar').map(([n]) => `${n}: ARCHIVE names the problem`));
  });
});
