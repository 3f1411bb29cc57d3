import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

export interface TarEntry {
  name: string;
  body: Buffer;
  type?: 'file' | 'symlink' | 'link' | 'directory' | 'fifo' | 'character-device' | 'block-device';
  linkname?: string;
}

/** Read every entry of a (small, test-made) tar into memory. */
export async function readTar(file: string): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    stream.on('end', () => {
      out.push({
        name: header.name,
        body: Buffer.concat(chunks),
        ...(header.type ? { type: header.type as NonNullable<TarEntry['type']> } : {}),
        ...(header.linkname ? { linkname: header.linkname } : {}),
      });
      next();
    });
    stream.resume();
  });
  await pipeline(createReadStream(file), extract);
  return out;
}

/** Write entries as a tar (headers as airlock writes them: mode 0644, uid/gid 0, fixed mtime). */
export async function writeTar(file: string, entries: readonly TarEntry[]): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(file));
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        { name: e.name, size: e.type && e.type !== 'file' ? 0 : e.body.length, mode: 0o644, mtime: new Date(1_700_000_000_000), uid: 0, gid: 0, type: e.type ?? 'file', ...(e.linkname ? { linkname: e.linkname } : {}) },
        e.type && e.type !== 'file' ? '' : e.body,
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
}
