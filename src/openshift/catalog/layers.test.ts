import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { gzipLayer, type BuiltLayer, type LayerEntry } from '../../../test/support/openshift-catalog/layer.js';
import { AirlockError } from '../../errors.js';
import { VerifyingStream } from '../../oci/digest.js';
import { MediaType } from '../../oci/media-types.js';
import { readLayerView, walkOrder, type LayerSource } from './layers.js';

const source = (l: BuiltLayer, bytes: Buffer = l.bytes): LayerSource => ({
  descriptor: l.descriptor,
  open: async () => Readable.from([bytes]).pipe(new VerifyingStream({ digest: l.descriptor.digest, size: l.descriptor.size, what: `layer ${l.descriptor.digest}` })),
});

/** The final view of `configs` after these layers: path → file text. */
async function view(layers: readonly (readonly LayerEntry[])[], root = 'configs') {
  const built = await Promise.all(layers.map((l) => gzipLayer(l)));
  const v = await readLayerView<string>(built.map((b) => source(b)), {
    root,
    parse() {
      const chunks: Buffer[] = [];
      return { write: (c) => void chunks.push(c), end: () => Buffer.concat(chunks).toString('utf8') };
    },
  });
  return { found: v.rootFound, files: Object.fromEntries(v.files), ignored: v.ignored };
}

async function layerError(layers: readonly (readonly LayerEntry[])[]): Promise<AirlockError> {
  try {
    await view(layers);
  } catch (e) {
    expect(e).toBeInstanceOf(AirlockError);
    return e as AirlockError;
  }
  throw new Error('expected an error');
}

describe('readLayerView', () => {
  it('applies later files over earlier ones and leaves other directories unread', async () => {
    const v = await view([
      [{ name: 'configs/a/catalog.json', body: 'a1' }, { name: 'configs/b.json', body: 'b1' }, { name: 'other/x', body: 'not read' }],
      [{ name: './configs/a/catalog.json', body: 'a2' }],
    ]);
    expect(v).toEqual({ found: true, files: { 'a/catalog.json': 'a2', 'b.json': 'b1' }, ignored: [] });
  });

  it('deletes a directory with .wh.<name> from lower layers only', async () => {
    const v = await view([
      [{ name: 'configs/gone/catalog.json', body: 'old' }, { name: 'configs/keep.json', body: 'k' }],
      // the whiteout comes after a new file of the same name in this layer: that file stays
      [{ name: 'configs/gone/new.json', body: 'new' }, { name: 'configs/.wh.gone', body: '' }],
    ]);
    expect(v.files).toEqual({ 'gone/new.json': 'new', 'keep.json': 'k' });
  });

  it('hides lower children of an opaque directory, keeping its own layer\'s', async () => {
    const v = await view([
      [{ name: 'configs/p/old.json', body: 'old' }, { name: 'configs/q.json', body: 'q' }],
      [{ name: 'configs/p/new.json', body: 'new' }, { name: 'configs/p/.wh..wh..opq', body: '' }],
    ]);
    expect(v.files).toEqual({ 'p/new.json': 'new', 'q.json': 'q' });
  });

  it('loses everything when an ancestor of the directory is whited out, and finds it again when re-added', async () => {
    expect((await view([[{ name: 'configs/a.json', body: 'a' }], [{ name: '.wh.configs', body: '' }]])).found).toBe(false);
    const v = await view([[{ name: 'configs/a.json', body: 'a' }], [{ name: '.wh.configs', body: '' }], [{ name: 'configs/b.json', body: 'b' }]]);
    expect(v.files).toEqual({ 'b.json': 'b' });
  });

  it('lets a file replace a directory and a directory replace a file', async () => {
    const v = await view([
      [{ name: 'configs/x/inner.json', body: 'inner' }, { name: 'configs/y', body: 'file y' }],
      [{ name: 'configs/x', body: 'x is a file now' }, { name: 'configs/y/', dir: true }, { name: 'configs/y/z.json', body: 'z' }],
    ]);
    expect(v.files).toEqual({ x: 'x is a file now', 'y/z.json': 'z' });
  });

  it('gives a hard link the content of its target', async () => {
    const v = await view([[{ name: 'configs/a.json', body: 'A' }, { name: 'configs/b.json', hardlink: 'configs/a.json' }]]);
    expect(v.files).toEqual({ 'a.json': 'A', 'b.json': 'A' });
  });

  it('honours .indexignore files, scoped to their directory', async () => {
    const v = await view([
      [
        { name: 'configs/.indexignore', body: '*.md\n' },
        { name: 'configs/README.md', body: 'x' },
        { name: 'configs/p/.indexignore', body: 'extra.json\n' },
        { name: 'configs/p/extra.json', body: 'e' },
        { name: 'configs/extra.json', body: 'kept' },
      ],
    ]);
    expect(v.files).toEqual({ 'extra.json': 'kept' });
    expect(v.ignored).toEqual(['README.md', 'p/extra.json']);
  });

  it('lists files in fs.WalkDir order', () => {
    // the directory a/ sorts as "a", before "a-b.json" and "a.json"
    expect(['a.json', 'a/x.json', 'b/c.json', 'a-b.json'].sort(walkOrder)).toEqual(['a/x.json', 'a-b.json', 'a.json', 'b/c.json']);
  });

  describe('when a file cannot be parsed', () => {
    const strict = async (layers: readonly (readonly LayerEntry[])[]) => {
      const built = await Promise.all(layers.map((l) => gzipLayer(l)));
      return readLayerView<string>(built.map((b) => source(b)), {
        root: 'configs',
        parse: (p) => ({
          write(c) {
            if (c.toString().includes('bad')) throw new AirlockError('MANIFEST_INVALID', `bad file ${p}`);
          },
          end: () => 'ok',
        }),
      });
    };
    it('fails only if the file is still there at the end, and not ignored', async () => {
      await expect(strict([[{ name: 'configs/x.json', body: 'bad' }]])).rejects.toThrow('bad file x.json');
      expect((await strict([[{ name: 'configs/x.json', body: 'bad' }], [{ name: 'configs/.wh.x.json', body: '' }]])).files).toEqual([]);
      expect((await strict([[{ name: 'configs/x.json', body: 'bad' }], [{ name: 'configs/x.json', body: 'good' }]])).files).toEqual([['x.json', 'ok']]);
      // the .indexignore comes after the file, even in a later layer
      expect((await strict([[{ name: 'configs/x.md', body: 'bad' }], [{ name: 'configs/.indexignore', body: '*.md' }]])).ignored).toEqual(['x.md']);
    });
  });

  describe('refuses', () => {
    it('a symbolic link in the catalog directory', async () => {
      const e = await layerError([[{ name: 'configs/a.json', symlink: '/etc/passwd' }]]);
      expect(e.detail?.catalog).toBe('layer');
      expect(e.message).toMatch(/\/configs\/a\.json is a symbolic link \(to \/etc\/passwd\); links in the catalog directory are not supported/);
    });
    it('a path with ..', async () => {
      expect((await layerError([[{ name: 'configs/../../etc/x', body: '' }]])).message).toMatch(/has a "\.\." path component/);
    });
    it('a hard link to a file outside the directory', async () => {
      expect((await layerError([[{ name: 'etc/x', body: 'x' }, { name: 'configs/x.json', hardlink: 'etc/x' }]])).message).toMatch(/is a hard link to \/etc\/x/);
    });
    it('a zstd layer, with the reason', async () => {
      const l = await gzipLayer([{ name: 'configs/a.json', body: '{}' }]);
      const zstd = { ...l, descriptor: { ...l.descriptor, mediaType: MediaType.OciLayerZstd } };
      await expect(readLayerView([source(zstd)], { root: 'configs', parse: () => ({ write() {}, end: () => '' }) })).rejects.toThrow(/zstd-compressed .* needs Node ≥ 22\.15/);
    });
    it('a layer whose bytes do not match its digest, even when the tar reads fine', async () => {
      const l = await gzipLayer([{ name: 'configs/a.json', body: '{}' }]);
      const forged = { ...l, descriptor: { ...l.descriptor, digest: `sha256:${'0'.repeat(64)}` as typeof l.descriptor.digest } };
      const e = await readLayerView([source(forged)], { root: 'configs', parse: () => ({ write() {}, end: () => '' }) }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(AirlockError);
      expect((e as AirlockError).code).toBe('DIGEST_MISMATCH');
    });
  });
});
