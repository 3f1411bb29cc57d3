import { Readable } from 'node:stream';
import { AirlockError, type Side } from '../errors.js';
import { verifyBytes } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { MAX_MANIFEST_BYTES } from '../oci/media-types.js';
import type { Fetcher, OpOptions } from './storage.js';

/**
 * Read a whole (small) stream into memory, refusing more than `limit` bytes so that
 * a hostile peer cannot make us buffer without bound.
 */
export async function readAll(stream: Readable, limit: number, what = 'content'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    total += b.length;
    if (total > limit) {
      stream.destroy();
      throw new AirlockError('MANIFEST_INVALID', `${what}: larger than the ${limit}-byte limit`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, total);
}

/** Fetch a manifest-sized blob into memory with size and digest verified. */
export async function fetchBytes(
  fetcher: Fetcher,
  desc: Descriptor,
  options: OpOptions & { what?: string; side?: Side; limit?: number } = {},
): Promise<Buffer> {
  const limit = options.limit ?? MAX_MANIFEST_BYTES;
  const what = options.what ?? `${desc.mediaType} ${desc.digest}`;
  if (desc.size > limit) {
    throw new AirlockError('MANIFEST_INVALID', `${what}: ${desc.size} bytes is over the ${limit}-byte limit for in-memory content`);
  }
  const stream = await fetcher.fetch(desc, options);
  const bytes = await readAll(stream, limit, what);
  verifyBytes(bytes, { digest: desc.digest, size: desc.size, what, ...(options.side ? { side: options.side } : {}) });
  return bytes;
}

export function toReadable(content: Readable | Uint8Array): Readable {
  return content instanceof Uint8Array ? Readable.from([Buffer.from(content.buffer, content.byteOffset, content.byteLength)]) : content;
}
