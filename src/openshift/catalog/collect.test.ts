import { describe, expect, it } from 'vitest';
import { collectOperatorImages } from './collect.js';
import type { FbcBundle } from './fbc.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;

describe('collectOperatorImages', () => {
  it('collects bundle images and related images once each, by digest when the catalog pins them', () => {
    const bundles: FbcBundle[] = [
      {
        package: 'a',
        name: 'a.v1',
        image: `quay.io/x/a-bundle@${D1}`,
        relatedImages: [
          { name: '', image: `quay.io/x/a-bundle@${D1}` },
          { name: 'operator', image: `quay.io/x/a-operator@${D2}` },
          { name: 'empty', image: '' },
        ],
      },
      {
        package: 'a',
        name: 'a.v2',
        image: `quay.io/x/a-bundle@${D3}`,
        relatedImages: [
          { name: 'operator', image: `quay.io/x/a-operator@${D2}` },
          { name: 'tool', image: 'quay.io/x/tool:1.0' },
          { name: 'bad', image: 'Not A Reference' },
        ],
      },
    ];
    const { images, skipped } = collectOperatorImages(bundles);
    expect(images.map((i) => [i.written, i.digest, i.roles, i.usedBy])).toEqual([
      [`quay.io/x/a-bundle@${D1}`, D1, ['bundle'], ['a/a.v1']],
      [`quay.io/x/a-bundle@${D3}`, D3, ['bundle'], ['a/a.v2']],
      [`quay.io/x/a-operator@${D2}`, D2, ['related'], ['a/a.v1', 'a/a.v2']],
      ['quay.io/x/tool:1.0', undefined, ['related'], ['a/a.v2']],
    ]);
    expect(skipped.map((s) => [s.written, s.bundle])).toEqual([['Not A Reference', 'a/a.v2']]);
  });
});
