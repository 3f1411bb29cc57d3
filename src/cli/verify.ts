import type { Command } from 'commander';
import * as path from 'node:path';
import { checkArchive, type CheckedArchive } from '../archive/check.js';
import { Logger } from './io.js';
import type { RunContext } from './main.js';
import { formatBytes, Progress } from './progress.js';

export function registerVerify(program: Command, ctx: RunContext): void {
  program
    .command('verify')
    .summary('check an archive offline: tar safety, every blob, the inventory')
    .description(
      'Check an archive without a network: only safe tar entries, every blob hashing to its name, every descriptor\n' +
        'reachable from index.json present, the inventory agreeing with the layout, and FILE.sha256 when present.\n' +
        'Exits 4 when the archive is malformed or hostile.',
    )
    .argument('<archive>', 'the archive written by airlock pack')
    .option('--json', 'print a machine-readable report on stdout')
    .action(async (file: string, opts: { json?: boolean }) => {
      const g = ctx.globals();
      const log = new Logger(ctx.io, g);
      const archive = await openChecked(path.resolve(ctx.io.cwd, file), ctx, g.quiet);
      try {
        const report = verifyReport(archive);
        if (opts.json) ctx.io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else {
          ctx.io.stdout.write(
            `${archive.path}: ok — ${archive.blobs} blobs (${formatBytes(archive.bytes)}) verified; ` +
              `${archive.inventory.images.length} image(s), ${archive.inventory.referrers.length} referrer(s), ` +
              `${archive.inventory.trustRoots.length} trust root(s); sidecar ${archive.sidecar}\n`,
          );
        }
        log.debug(`inventory ${archive.inventoryDesc.digest}`);
      } finally {
        await archive.reader.close();
      }
    });
}

/** Open and check an archive with a progress line; used by verify, inspect and unpack. */
export async function openChecked(file: string, ctx: RunContext, quiet: boolean): Promise<CheckedArchive> {
  const progress = new Progress(ctx.io, { quiet });
  try {
    return await checkArchive(file, {
      ...(ctx.io.signal ? { signal: ctx.io.signal } : {}),
      onProgress: (done, total) => progress.status(`checking blobs ${done}/${total}`, done === total),
    });
  } finally {
    progress.done();
  }
}

export function verifyReport(a: CheckedArchive): unknown {
  return {
    archive: a.path,
    ok: true,
    sidecar: a.sidecar,
    blobs: a.blobs,
    bytes: a.bytes,
    inventory: a.inventoryDesc.digest,
    images: a.inventory.images.map((im) => ({ source: im.source, digest: im.digest })),
    referrers: a.inventory.totals.referrers,
    trustRoots: a.inventory.trustRoots.map((t) => ({ name: t.name, kind: t.kind, digest: t.digest })),
  };
}
