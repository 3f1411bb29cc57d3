import type { Command } from 'commander';
import * as path from 'node:path';
import type { CheckedArchive } from '../archive/check.js';
import type { InventoryReferrer } from '../archive/inventory.js';
import { isIndex } from '../oci/manifest.js';
import type { RunContext } from './main.js';
import { formatBytes } from './progress.js';
import { openChecked } from './verify.js';

export function registerInspect(program: Command, ctx: RunContext): void {
  program
    .command('inspect')
    .summary('show what an archive holds: images, platforms, signatures, attachments, trust roots')
    .argument('<archive>', 'the archive written by airlock pack')
    .option('--json', 'print the inventory and layout summary as JSON on stdout')
    .action(async (file: string, opts: { json?: boolean }) => {
      const archive = await openChecked(path.resolve(ctx.io.cwd, file), ctx, ctx.globals().quiet);
      try {
        if (opts.json) ctx.io.stdout.write(`${JSON.stringify(inspectJson(archive), null, 2)}\n`);
        else ctx.io.stdout.write(inspectText(archive));
      } finally {
        await archive.reader.close();
      }
    });
}

function sizeOf(a: CheckedArchive, digest: string): number {
  const m = a.manifests.get(digest as never);
  if (!m) return 0;
  if (isIndex(m.manifest)) return m.desc.size;
  return m.desc.size + m.manifest.config.size + m.manifest.layers.reduce((s, l) => s + l.size, 0);
}

function referrerLines(a: CheckedArchive, subject: string, indent: string, seen: Set<string>): string[] {
  const out: string[] = [];
  const list = a.inventory.referrers.filter((r) => r.subject === subject);
  for (const r of list) {
    if (seen.has(`${subject}>${r.digest}`)) continue;
    seen.add(`${subject}>${r.digest}`);
    out.push(`${indent}${label(r)} ${r.digest.slice(0, 19)}… ${formatBytes(sizeOf(a, r.digest))} [${r.foundBy.join(', ')}]`);
    out.push(...referrerLines(a, r.digest, `${indent}  `, seen));
  }
  return out;
}

function label(r: InventoryReferrer): string {
  const t = r.artifactType ?? r.types[0];
  const where = r.tag ? ` (tag ${r.tag})` : '';
  return `${r.kind}${t && r.kind !== 'signature' ? ` ${t}` : ''}${where}`;
}

export function inspectText(a: CheckedArchive): string {
  const lines: string[] = [];
  const inv = a.inventory;
  lines.push(`${a.path}`);
  lines.push(`  created ${inv.created} by airlock ${inv.airlock.version}; ${a.blobs} blobs, ${formatBytes(a.bytes)}`);
  const seen = new Set<string>();
  for (const im of inv.images) {
    lines.push(`  image ${im.source}`);
    lines.push(`    digest ${im.digest} (${im.mediaType}, ${formatBytes(sizeOf(a, im.digest))})`);
    lines.push(...referrerLines(a, im.digest, '    ', seen));
    for (const p of im.platforms) {
      const pl = p.platform ? [p.platform.os, p.platform.architecture, p.platform.variant].filter(Boolean).join('/') : 'unknown platform';
      lines.push(`    platform ${pl} ${p.digest} (${formatBytes(sizeOf(a, p.digest))})`);
      lines.push(...referrerLines(a, p.digest, '      ', seen));
    }
    for (const p of im.skippedPlatforms) {
      const pl = p.platform ? [p.platform.os, p.platform.architecture, p.platform.variant].filter(Boolean).join('/') : 'unknown platform';
      lines.push(`    platform ${pl} ${p.digest} (not packed: platform filter)`);
    }
  }
  lines.push('  trust roots');
  if (inv.trustRoots.length === 0) lines.push('    none');
  for (const t of inv.trustRoots) {
    lines.push(`    ${t.name} (${t.kind}) ${t.digest}`);
    lines.push(`      source ${t.source}; fetched ${t.fetchedAt}`);
  }
  const r = inv.totals.referrers;
  lines.push(`  totals: ${inv.totals.images} image(s), ${r.signature} signature(s), ${r.attestation} attestation(s), ${r.sbom} sbom(s), ${r.other} other`);
  return `${lines.join('\n')}\n`;
}

export function inspectJson(a: CheckedArchive): unknown {
  return {
    archive: a.path,
    inventoryDigest: a.inventoryDesc.digest,
    blobs: a.blobs,
    bytes: a.bytes,
    sidecar: a.sidecar,
    ...a.inventory,
  };
}
