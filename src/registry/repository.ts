import { pipeline, Readable } from 'node:stream';
import { AirlockError, errorLine, isAirlockError } from '../errors.js';
import { dump, header, isRetryableStatus, isTransientError, readBody, redact, type HttpResponse } from '../http/transport.js';
import type { OpOptions, ReferrerLister, ReferrersOptions, TagLister, Target } from '../content/storage.js';
import { readAll, toReadable } from '../content/read.js';
import { digestAlgorithm, digestOf, isDigest, verifyBytes, VerifyingStream, type Digest } from '../oci/digest.js';
import { isIndex, parseDescriptor, parseManifest, type Descriptor } from '../oci/manifest.js';
import { isManifestMediaType, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, MediaType } from '../oci/media-types.js';
import { fallbackTag, filterByArtifactType } from '../oci/referrers.js';
import { repositoryScope, type RegistrySession } from './session.js';

export type ReferrersApiState = 'unknown' | 'yes' | 'no';

export interface PushOptions extends OpOptions {
  /** upload in PATCH chunks (default: when the blob is at least the chunk threshold) */
  chunked?: boolean;
  /**
   * The blob's bytes once more, from the start, for another attempt after a
   * transient failure; without it a streamed blob is tried once.
   */
  reopen?: () => Promise<Readable>;
}

export interface RepositoryTuning {
  /** blobs at least this large are uploaded in PATCH chunks (default 256 MiB) */
  chunkThreshold?: number;
  /** size of one PATCH chunk (default 32 MiB); bounds the memory an upload holds */
  chunkSize?: number;
}

/**
 * One repository of one registry, speaking the OCI distribution-spec. It is a
 * Target (fetch, exists, push, resolve, tag) and lists tags and referrers.
 * Every read is checked for size and digest; manifests are kept as served.
 */
export class Repository implements Target, ReferrerLister, TagLister {
  readonly registry: string;
  readonly name: string;
  readonly #s: RegistrySession;
  readonly #chunkThreshold: number;
  readonly #chunkSize: number;
  #referrersApi: ReferrersApiState = 'unknown';

  constructor(session: RegistrySession, registry: string, name: string, tuning: RepositoryTuning = {}) {
    this.#s = session;
    this.registry = registry;
    this.name = name;
    this.#chunkThreshold = tuning.chunkThreshold ?? 256 * 1024 * 1024;
    this.#chunkSize = tuning.chunkSize ?? 32 * 1024 * 1024;
  }

  toString(): string {
    return `${this.registry}/${this.name}`;
  }

  // ---- reads -------------------------------------------------------------

  /**
   * A blob or manifest as a stream that errors unless its bytes match `desc`.
   * A blob whose body breaks off (reset, body timeout, truncated) is resumed
   * with `Range: bytes=N-` (RFC 9110 §14.2; distribution-spec "Pulling Blobs"
   * allows Range on blob GETs); the digest is checked over the joined bytes.
   */
  async fetch(desc: Descriptor, options: OpOptions = {}): Promise<Readable> {
    const manifest = isManifestMediaType(desc.mediaType);
    const what = `${manifest ? 'manifest' : 'blob'} ${desc.digest}`;
    const get = (range?: number): Promise<HttpResponse> =>
      this.#send('pull', {
        method: 'GET',
        url: `${this.name}/${manifest ? 'manifests' : 'blobs'}/${desc.digest}`,
        headers: { ...(manifest ? { accept: acceptFor(desc.mediaType) } : {}), ...(range !== undefined ? { range: `bytes=${range}-` } : {}) },
        signal: options.signal,
        // Blob GETs are commonly redirected to storage; the transport drops
        // Authorization when the redirect leaves the registry's origin.
        followRedirects: !manifest,
      });
    const verifier = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `${what} of ${this}`, ...this.#side() });
    if (manifest) {
      // Manifests are small: read whole, again from the start if the body breaks.
      const { bytes } = await this.#readWhole(() => get(), `fetching ${what}`, Math.max(desc.size + 1, 1), options.signal);
      pipeline(Readable.from([bytes]), verifier, () => undefined);
      return verifier;
    }
    const res = await get();
    if (res.status !== 200) throw await this.#fail(res, `fetching ${what}`);
    const body = Readable.from(this.#resumingBody(res, desc, get, options.signal), { objectMode: false });
    // pipeline destroys the HTTP body if the consumer stops early or the check fails.
    pipeline(body, verifier, () => undefined);
    return verifier;
  }

  /**
   * The bytes of a blob across as many responses as it takes: when a body
   * breaks off after N bytes, ask for the rest from N. A 206 continues where we
   * were; a 200 (Range ignored) is read from the start with the first N bytes
   * dropped. At most `retries` attempts in a row that bring no new byte.
   */
  async *#resumingBody(
    first: HttpResponse,
    desc: Descriptor,
    get: (range?: number) => Promise<HttpResponse>,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Buffer> {
    const http = this.#s.http;
    let res: HttpResponse | undefined = first;
    let skip = 0;
    let offset = 0;
    let idle = 0;
    let resumes = 0;
    try {
      for (;;) {
        const before = offset;
        let broke: unknown;
        try {
          for await (const c of res.body) {
            let b = c as Buffer;
            if (skip > 0) {
              const drop = Math.min(skip, b.length);
              skip -= drop;
              b = b.subarray(drop);
              if (b.length === 0) continue;
            }
            offset += b.length;
            yield b;
          }
        } catch (e) {
          if (signal?.aborted) throw new AirlockError('ABORTED', `fetching blob ${desc.digest} of ${this}: cancelled`, { cause: e });
          if (!isTransientError(e)) throw e;
          broke = e;
        }
        // A body that ended cleanly but short (no Content-Length, cut) is resumed too;
        // one that ended at or past the size is left to the verifier's judgement.
        if (broke === undefined && offset >= desc.size) return;
        res = undefined;
        idle = offset > before ? 0 : idle + 1;
        resumes++;
        if (idle > http.retries || resumes > MAX_RESUMES) {
          const why = broke === undefined ? 'the body ended early' : errorLine(broke);
          throw this.#s.error('NETWORK', `fetching blob ${desc.digest} of ${this}: the download broke off at byte ${offset} of ${desc.size} (${why}) and could not be resumed after ${resumes - 1} attempt(s); try again later or raise --retries`);
        }
        this.#s.http.note(`GET blob ${desc.digest}: resuming at byte ${offset} of ${desc.size}`);
        await http.pause(idle, { signal });
        const next = await get(offset);
        if (next.status === 206 && rangeStart(header(next, 'content-range')) === offset) {
          skip = 0;
        } else if (next.status === 200) {
          skip = offset; // the registry ignored Range: read again, drop what we have
        } else if (next.status === 416 || next.status === 206) {
          await dump(next);
          skip = 0;
          res = await get();
          if (res.status !== 200) throw await this.#fail(res, `fetching blob ${desc.digest}`);
          skip = offset;
          continue;
        } else {
          throw await this.#fail(next, `resuming blob ${desc.digest} at byte ${offset}`);
        }
        res = next;
      }
    } finally {
      if (res && !res.body.destroyed) res.body.destroy();
    }
  }

  /** GET a small document whole; a body that breaks off is fetched again, up to the retry budget. */
  async #readWhole(
    get: () => Promise<HttpResponse>,
    what: string,
    limit: number,
    signal: AbortSignal | undefined,
    inspect?: (res: HttpResponse) => void,
  ): Promise<{ res: HttpResponse; bytes: Buffer }> {
    for (let attempt = 0; ; attempt++) {
      const res = await get();
      if (res.status !== 200) throw await this.#fail(res, what);
      inspect?.(res);
      try {
        return { res, bytes: await readAll(res.body, limit, `${what} of ${this}`) };
      } catch (e) {
        if (signal?.aborted) throw new AirlockError('ABORTED', `${what} of ${this}: cancelled`, { cause: e });
        if (!isTransientError(e) || attempt >= this.#s.http.retries) throw e;
        this.#s.http.note(`${what} of ${this}: the body broke off (${errorLine(e)}); fetching again`);
        await this.#s.http.pause(attempt, { signal });
      }
    }
  }

  /** HEAD: is the blob or manifest present? */
  async exists(desc: Descriptor, options: OpOptions = {}): Promise<boolean> {
    const manifest = isManifestMediaType(desc.mediaType);
    const res = await this.#send('pull', {
      method: 'HEAD',
      url: `${this.name}/${manifest ? 'manifests' : 'blobs'}/${desc.digest}`,
      headers: manifest ? { accept: acceptFor(desc.mediaType) } : {},
      signal: options.signal,
      followRedirects: !manifest,
    });
    await dump(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.#fail(res, `checking ${desc.digest}`);
  }

  /** A tag or digest to the descriptor of its manifest: HEAD, else GET when the HEAD answer is not enough. */
  async resolve(reference: string, options: OpOptions = {}): Promise<Descriptor> {
    const res = await this.#send('pull', {
      method: 'HEAD',
      url: `${this.name}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      signal: options.signal,
    });
    await dump(res);
    if (res.status === 404) throw await this.#fail(res, `resolving ${reference}`);
    if (res.status === 401 || res.status === 403) throw await this.#fail(res, `resolving ${reference}`);
    const dcd = header(res, 'docker-content-digest');
    const type = mediaTypeOf(header(res, 'content-type'));
    const size = Number(header(res, 'content-length'));
    if (res.status === 200 && dcd && isDigest(dcd) && isManifestMediaType(type) && Number.isSafeInteger(size) && size > 0) {
      if (isDigest(reference) && dcd !== reference) {
        throw this.#s.error('DIGEST_MISMATCH', `resolving ${reference} in ${this}: the registry answered with digest ${dcd}`);
      }
      return { mediaType: type!, digest: dcd, size };
    }
    return (await this.fetchManifest(reference, options)).desc;
  }

  /**
   * A manifest by tag or digest, with its bytes exactly as served. The digest is
   * checked against the reference when it is one, else against
   * Docker-Content-Digest when the registry sends it.
   */
  async fetchManifest(reference: string, options: OpOptions = {}): Promise<{ desc: Descriptor; bytes: Buffer }> {
    const what = `manifest ${reference}`;
    const { res, bytes } = await this.#readWhole(
      () =>
        this.#send('pull', {
          method: 'GET',
          url: `${this.name}/manifests/${reference}`,
          headers: { accept: MANIFEST_ACCEPT },
          signal: options.signal,
        }),
      `fetching ${what}`,
      MAX_MANIFEST_BYTES,
      options.signal,
      (r) => {
        const declared = Number(header(r, 'content-length'));
        if (Number.isSafeInteger(declared) && declared > MAX_MANIFEST_BYTES) {
          r.body.destroy();
          throw this.#s.error('MANIFEST_INVALID', `${what} of ${this}: ${declared} bytes is over the ${MAX_MANIFEST_BYTES}-byte limit for manifests`);
        }
      },
    );
    const dcd = header(res, 'docker-content-digest');
    const expected: Digest | undefined = isDigest(reference) ? reference : dcd !== undefined && isDigest(dcd) ? dcd : undefined;
    const digest = digestOf(bytes, expected ? digestAlgorithm(expected) : 'sha256');
    if (expected !== undefined && digest !== expected) {
      throw this.#s.error('DIGEST_MISMATCH', `${what} of ${this}: content hashes to ${digest}, not ${expected}`);
    }
    if (isDigest(reference) && dcd !== undefined && isDigest(dcd) && digestAlgorithm(dcd) === digestAlgorithm(reference) && dcd !== reference) {
      throw this.#s.error('DIGEST_MISMATCH', `${what} of ${this}: the registry claims digest ${dcd}`);
    }
    const served = mediaTypeOf(header(res, 'content-type'));
    const m = parseManifest(bytes, { what: `${what} of ${this}`, ...this.#side(), ...(isManifestMediaType(served) ? { mediaType: served! } : {}) });
    const mediaType = typeof m.mediaType === 'string' ? m.mediaType : isManifestMediaType(served) ? served! : isIndex(m) ? MediaType.OciIndex : MediaType.OciManifest;
    const desc: Descriptor = {
      mediaType,
      digest: expected ?? digest,
      size: bytes.byteLength,
      ...(m.artifactType !== undefined ? { artifactType: m.artifactType } : {}),
    };
    return { desc, bytes };
  }

  /** Tags, following `Link` pagination (distribution-spec "Listing Tags"). */
  async *tags(options: OpOptions & { last?: string; n?: number } = {}): AsyncIterable<string> {
    const first = new URL(`${this.name}/tags/list`, this.#s.baseUrl(this.registry));
    if (options.n !== undefined) first.searchParams.set('n', String(options.n));
    if (options.last !== undefined) first.searchParams.set('last', options.last);
    let url: URL | undefined = first;
    while (url) {
      const res = await this.#send('pull', { method: 'GET', url, headers: { accept: 'application/json' }, signal: options.signal });
      if (res.status !== 200) throw await this.#fail(res, 'listing tags');
      const doc = await readJson(res, `tag list of ${this}`, this);
      const tags = (doc as { tags?: unknown }).tags;
      if (tags !== null && tags !== undefined && !Array.isArray(tags)) {
        throw this.#s.error('REGISTRY', `tag list of ${this}: "tags" is not an array`);
      }
      for (const t of (tags ?? []) as unknown[]) if (typeof t === 'string') yield t;
      url = nextLink(header(res, 'link'), url);
    }
  }

  // ---- writes ------------------------------------------------------------

  /**
   * Store content under `desc`. Manifests (by media type) are PUT by digest;
   * blobs are skipped when present, else uploaded POST+PUT, or in PATCH chunks
   * above the chunk threshold. Size and digest are checked as the bytes leave.
   */
  async push(desc: Descriptor, content: Readable | Uint8Array, options: PushOptions = {}): Promise<void> {
    if (isManifestMediaType(desc.mediaType)) {
      const bytes = content instanceof Uint8Array ? content : await readAll(content, MAX_MANIFEST_BYTES, `manifest ${desc.digest}`);
      await this.pushManifest(desc, bytes, options);
      return;
    }
    if (content instanceof Uint8Array) verifyBytes(content, { digest: desc.digest, size: desc.size, what: `blob ${desc.digest}`, ...this.#side() });
    if (await this.exists(desc, options)) {
      if (!(content instanceof Uint8Array)) content.destroy();
      return;
    }
    const http = this.#s.http;
    const chunked = options.chunked ?? desc.size >= this.#chunkThreshold;
    let body = content;
    // A failed upload is tried again from a fresh upload session (the old one is
    // cancelled) when the failure was transient and the bytes can be had again;
    // chunked uploads first resume inside their session (#uploadChunks).
    for (let attempt = 0; ; attempt++) {
      const location = await this.#startUpload(desc, options);
      try {
        if (chunked) await this.#uploadChunks(desc, body, location, options);
        else await this.#uploadMonolithic(desc, body, location, options);
        return;
      } catch (e) {
        if (!(body instanceof Uint8Array)) body.destroy();
        await this.#cancelUpload(location.url);
        const replayable = content instanceof Uint8Array || options.reopen !== undefined;
        if (options.signal?.aborted || !replayable || attempt >= http.retries || !isTransientUploadError(e)) throw e;
        http.note(`upload of ${desc.digest} to ${this} failed (${errorLine(e)}); starting it again (${attempt + 1}/${http.retries})`);
        await http.pause(attempt, { retryAfter: retryAfterOf(e), signal: options.signal });
        // The registry may have completed the upload even though we saw it fail.
        if (await this.exists(desc, options)) return;
        body = content instanceof Uint8Array ? content : await options.reopen!();
      }
    }
  }

  /**
   * PUT manifest bytes under their digest, or under `tag`, with their own media
   * type. `subjectAccepted` is true when the registry answered OCI-Subject with
   * the manifest's subject (distribution-spec "Pushing Manifests with Subject"):
   * it then maintains the referrers list itself.
   */
  async pushManifest(desc: Descriptor, bytes: Uint8Array, options: OpOptions & { tag?: string } = {}): Promise<{ subjectAccepted: boolean }> {
    verifyBytes(bytes, { digest: desc.digest, size: desc.size, what: `manifest ${desc.digest}`, ...this.#side() });
    const target = options.tag ?? desc.digest;
    let res: HttpResponse;
    for (let attempt = 0; ; attempt++) {
      res = await this.#send('pull,push', {
        method: 'PUT',
        url: `${this.name}/manifests/${target}`,
        headers: { 'content-type': desc.mediaType },
        body: bytes,
        signal: options.signal,
      });
      if (res.status === 201 || res.status === 200 || res.status === 202) break;
      const err = await this.#fail(res, `pushing manifest ${desc.digest}${options.tag ? ` as tag ${options.tag}` : ''}`);
      // Distribution 2.8's filesystem driver rewrites a repository's blob link file in
      // place (truncate, then write) each time an upload of that blob completes. While
      // another writer completes an upload of the same blob, the manifest check can read
      // the link empty and answer 400 MANIFEST_BLOB_UNKNOWN (with DIGEST_INVALID) for a
      // blob that is there. Seen with two unpacks of one image at once; it passes in
      // milliseconds, so a few short retries tell it from a blob that is really missing.
      if (attempt >= MANIFEST_BLOB_RACE_RETRIES || !isBlobLinkRace(err)) throw err;
      this.#s.http.note(`pushing manifest ${desc.digest} to ${this}: ${errorLine(err)}; another writer may be completing the same blobs, trying again`);
      await this.#s.http.pause(attempt, { signal: options.signal });
    }
    await dump(res);
    const dcd = header(res, 'docker-content-digest');
    if (dcd !== undefined && isDigest(dcd) && digestAlgorithm(dcd) === digestAlgorithm(desc.digest) && dcd !== desc.digest) {
      throw this.#s.error('DIGEST_MISMATCH', `pushing manifest ${desc.digest} to ${this}: the registry stored it as ${dcd}`);
    }
    let subject: string | undefined;
    try {
      subject = parseManifest(bytes, { mediaType: desc.mediaType }).subject?.digest;
    } catch {
      subject = undefined;
    }
    return { subjectAccepted: subject !== undefined && header(res, 'oci-subject') === subject };
  }

  /** Point `tag` at a manifest: PUT its exact bytes under the tag with its media type. */
  async tag(desc: Descriptor, bytes: Uint8Array, tag: string, options: OpOptions = {}): Promise<void> {
    await this.pushManifest(desc, bytes, { ...options, tag });
  }

  /**
   * Cross-repository blob mount (distribution-spec "Mounting a blob from another
   * repository"). false when the registry opened an upload session instead; the
   * session is cancelled.
   */
  async mount(desc: Descriptor, fromRepository: string, options: OpOptions = {}): Promise<boolean> {
    const url = new URL(`${this.name}/blobs/uploads/`, this.#s.baseUrl(this.registry));
    url.searchParams.set('mount', desc.digest);
    url.searchParams.set('from', fromRepository);
    const res = await this.#s.send(this.registry, [repositoryScope(this.name, 'pull,push'), repositoryScope(fromRepository, 'pull')], {
      method: 'POST',
      url,
      headers: { 'content-length': '0' },
      signal: options.signal,
    });
    await dump(res);
    if (res.status === 201) return true;
    if (res.status === 202) {
      const loc = header(res, 'location');
      if (loc) await this.#cancelUpload(new URL(loc, url));
      return false;
    }
    throw await this.#fail(res, `mounting ${desc.digest} from ${fromRepository}`);
  }

  async deleteManifest(digest: Digest, options: OpOptions = {}): Promise<void> {
    const res = await this.#send('delete', { method: 'DELETE', url: `${this.name}/manifests/${digest}`, signal: options.signal });
    if (res.status === 202 || res.status === 200) {
      await dump(res);
      return;
    }
    throw await this.#fail(res, `deleting manifest ${digest}`);
  }

  // ---- referrers ---------------------------------------------------------

  /** What we learnt about this repository's referrers API. */
  referrersApi(): ReferrersApiState {
    return this.#referrersApi;
  }

  /**
   * Referrers of `subject`: the API's list when the registry has the API, else
   * the `<alg>-<hex>` fallback tag index. The artifactType filter is re-applied here.
   */
  async referrers(subject: Descriptor, options: ReferrersOptions = {}): Promise<Descriptor[]> {
    const api = await this.referrersFromApi(subject, options);
    if (api !== undefined) return api;
    return (await this.referrersFromFallback(subject, options)).list;
  }

  /**
   * The referrers API listing (distribution-spec "Listing Referrers"), all pages;
   * undefined when the registry has no API. 404/405 or an answer that is not an
   * index means no API; a missing repository does not decide it.
   */
  async referrersFromApi(subject: Descriptor, options: ReferrersOptions = {}): Promise<Descriptor[] | undefined> {
    if (this.#referrersApi === 'no') return undefined;
    let url: URL | undefined = new URL(`${this.name}/referrers/${subject.digest}`, this.#s.baseUrl(this.registry));
    if (options.artifactType !== undefined) url.searchParams.set('artifactType', options.artifactType);
    const out: Descriptor[] = [];
    while (url) {
      const res = await this.#send('pull', { method: 'GET', url, headers: { accept: MediaType.OciIndex }, signal: options.signal });
      if (res.status === 404 || res.status === 405 || res.status === 400) {
        const err = await this.#s.responseError(res, { registry: this.registry, repository: this.name, what: 'listing referrers' });
        if (err.detail?.registryError === 'NAME_UNKNOWN') return [];
        this.#referrersApi = 'no';
        return undefined;
      }
      if (res.status !== 200) throw await this.#fail(res, `listing referrers of ${subject.digest}`);
      const type = mediaTypeOf(header(res, 'content-type'));
      const body = await readBody(res, MAX_MANIFEST_BYTES);
      let manifests: unknown;
      try {
        manifests = (JSON.parse(body.toString('utf8')) as { manifests?: unknown }).manifests;
      } catch {
        manifests = undefined;
      }
      if ((type !== undefined && type !== MediaType.OciIndex && type !== 'application/json') || !Array.isArray(manifests)) {
        this.#referrersApi = 'no';
        return undefined;
      }
      this.#referrersApi = 'yes';
      manifests.forEach((d, i) => out.push(parseDescriptor(d, `referrers of ${subject.digest} in ${this} [${i}]`, this.#s.side)));
      url = nextLink(header(res, 'link'), url);
    }
    // OCI-Filters-Applied says whether the server filtered; a server may ignore
    // the filter, so it is applied again whatever the header says.
    return filterByArtifactType(out, options.artifactType);
  }

  /**
   * The fallback tag index (distribution-spec "Referrers Tag Schema"): its list,
   * and its descriptor and bytes when it exists so a writer can merge into it.
   */
  async referrersFromFallback(
    subject: Descriptor,
    options: ReferrersOptions = {},
  ): Promise<{ list: Descriptor[]; desc?: Descriptor; bytes?: Buffer }> {
    let got: { desc: Descriptor; bytes: Buffer };
    try {
      got = await this.fetchManifest(fallbackTag(subject.digest), options);
    } catch (e) {
      if (isAirlockError(e, 'NOT_FOUND')) return { list: [] };
      throw e;
    }
    const m = parseManifest(got.bytes, { mediaType: got.desc.mediaType, what: `referrers fallback tag ${fallbackTag(subject.digest)} of ${this}`, ...this.#side() });
    if (!isIndex(m)) {
      throw this.#s.error('MANIFEST_INVALID', `referrers fallback tag ${fallbackTag(subject.digest)} of ${this}: is not an image index`);
    }
    return { list: filterByArtifactType(m.manifests, options.artifactType), desc: got.desc, bytes: got.bytes };
  }

  // ---- internals ---------------------------------------------------------

  async #startUpload(desc: Descriptor, options: OpOptions): Promise<{ url: URL }> {
    const res = await this.#send('pull,push', {
      method: 'POST',
      url: `${this.name}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      signal: options.signal,
    });
    await dump(res);
    const loc = header(res, 'location');
    if (res.status !== 202 || !loc) {
      if (res.status === 202) throw this.#s.error('REGISTRY', `starting the upload of ${desc.digest} to ${this}: no Location in the answer`);
      throw await this.#fail(res, `starting the upload of ${desc.digest}`);
    }
    return { url: new URL(loc, res.url) };
  }

  async #uploadMonolithic(desc: Descriptor, content: Readable | Uint8Array, location: { url: URL }, options: OpOptions): Promise<void> {
    const url = withDigest(location.url, desc.digest);
    let body: Uint8Array | Readable;
    let verifyError: unknown;
    if (content instanceof Uint8Array) {
      body = content;
    } else if (content instanceof VerifyingStream && content.checks(desc.digest, desc.size)) {
      // Already checked for this digest and size as it is read (the archive reader's fetch):
      // a second hash of every byte cost a core-second per GiB on unpack. Its failure still
      // ends the body early, so the registry never completes the upload.
      body = content;
      content.on('error', (e) => {
        if (isAirlockError(e)) verifyError ??= e;
      });
    } else {
      const verifier = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest} pushed to ${this}`, ...this.#side() });
      // Only our own size/digest checks count here; a premature close is the
      // echo of the request failing, and the request's error says more.
      pipeline(content, verifier, (e) => {
        if (isAirlockError(e)) verifyError = e;
      });
      verifier.on('error', (e) => {
        if (isAirlockError(e)) verifyError ??= e;
      });
      body = verifier;
    }
    let res: HttpResponse;
    try {
      res = await this.#send('pull,push', {
        method: 'PUT',
        url,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        body,
        signal: options.signal,
      });
    } catch (e) {
      throw verifyError ?? e;
    }
    if (verifyError) {
      await dump(res);
      throw verifyError;
    }
    await this.#finishUpload(res, desc);
  }

  async #uploadChunks(desc: Descriptor, content: Readable | Uint8Array, location: { url: URL }, options: OpOptions): Promise<void> {
    const verifier = new VerifyingStream({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest} pushed to ${this}`, ...this.#side() });
    const source: Readable = toReadable(content);
    pipeline(source, verifier, () => undefined);
    let url = location.url;
    let offset = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const http = this.#s.http;
    const send = async (whole: Buffer): Promise<void> => {
      let chunk = whole;
      for (let attempt = 0; ; attempt++) {
        let failure: unknown;
        try {
          // distribution-spec "Pushing a blob in chunks": Content-Range is inclusive.
          const res = await this.#send('pull,push', {
            method: 'PATCH',
            url,
            headers: {
              'content-type': 'application/octet-stream',
              'content-range': `${offset}-${offset + chunk.length - 1}`,
              'content-length': String(chunk.length),
            },
            body: chunk,
            signal: options.signal,
            // not blindly: the registry may have taken some of it; ask first (below)
            retry: false,
          });
          if (res.status === 202) {
            await dump(res);
            offset += chunk.length;
            const loc = header(res, 'location');
            if (loc) url = new URL(loc, url);
            return;
          }
          failure = await this.#fail(res, `uploading a chunk of ${desc.digest} at offset ${offset}`);
          if (!isRetryableStatus(res.status)) throw failure;
        } catch (e) {
          if (e === failure || options.signal?.aborted || !isTransientError(e)) throw e;
          failure = e;
        }
        if (attempt >= http.retries) throw failure;
        await http.pause(attempt, { retryAfter: retryAfterOf(failure), signal: options.signal });
        // distribution-spec "Resuming an upload"? The spec's GET on the upload
        // location answers 204 with `Range: 0-<last byte received>`: go on from there.
        const status = await this.#uploadStatus(url, options);
        const applied = status === undefined ? -1 : status.end - offset;
        if (status === undefined || applied < 0 || applied > chunk.length) {
          throw this.#s.error('NETWORK', `uploading ${desc.digest} to ${this}: the upload session cannot be resumed at byte ${offset} (${errorLine(failure)})`);
        }
        http.note(`upload of ${desc.digest}: the registry has ${status.end} bytes; resuming there`);
        url = status.url;
        offset = status.end;
        chunk = chunk.subarray(applied);
        if (chunk.length === 0) return;
      }
    };
    // Send whole chunks of chunkSize as they fill; memory holds at most one chunk plus one read.
    const flush = async (final: boolean): Promise<void> => {
      if (pendingBytes === 0 || (!final && pendingBytes < this.#chunkSize)) return;
      let all = Buffer.concat(pending, pendingBytes);
      while (all.length >= this.#chunkSize || (final && all.length > 0)) {
        const n = Math.min(this.#chunkSize, all.length);
        await send(all.subarray(0, n));
        all = all.subarray(n);
      }
      pending = all.length > 0 ? [all] : [];
      pendingBytes = all.length;
    };
    for await (const c of verifier) {
      const b = c as Buffer;
      pending.push(b);
      pendingBytes += b.length;
      await flush(false);
    }
    await flush(true);
    const res = await this.#send('pull,push', {
      method: 'PUT',
      url: withDigest(url, desc.digest),
      headers: { 'content-length': '0' },
      signal: options.signal,
    });
    await this.#finishUpload(res, desc);
  }

  /** GET upload status: how many bytes the session holds, and where to send the rest. */
  async #uploadStatus(url: URL, options: OpOptions): Promise<{ end: number; url: URL } | undefined> {
    let res: HttpResponse;
    try {
      res = await this.#send('pull,push', { method: 'GET', url, signal: options.signal });
    } catch (e) {
      if (isAirlockError(e, 'ABORTED')) throw e;
      return undefined;
    }
    await dump(res);
    if (res.status !== 204 && res.status !== 200) return undefined;
    const m = /^(?:bytes=)?0-(\d+)$/.exec((header(res, 'range') ?? '').trim());
    if (!m) return undefined;
    const last = Number(m[1]);
    const loc = header(res, 'location');
    // Distribution answers "0-0" for an empty session as well as for one byte; read
    // as empty (a one-byte session then refuses the next PATCH, and the upload fails
    // rather than being joined wrongly).
    return { end: last === 0 ? 0 : last + 1, url: loc ? new URL(loc, url) : url };
  }

  async #finishUpload(res: HttpResponse, desc: Descriptor): Promise<void> {
    if (res.status !== 201 && res.status !== 204 && res.status !== 200) throw await this.#fail(res, `completing the upload of ${desc.digest}`);
    await dump(res);
    const dcd = header(res, 'docker-content-digest');
    if (dcd !== undefined && isDigest(dcd) && dcd !== desc.digest) {
      throw this.#s.error('DIGEST_MISMATCH', `upload of ${desc.digest} to ${this}: the registry stored ${dcd}`);
    }
  }

  async #cancelUpload(url: URL): Promise<void> {
    try {
      const res = await this.#send('pull,push', { method: 'DELETE', url, retry: false });
      await dump(res);
    } catch {
      // best effort: an abandoned session is garbage-collected by the registry
    }
  }

  #send(
    actions: 'pull' | 'pull,push' | 'delete',
    req: Parameters<RegistrySession['send']>[2],
  ): Promise<HttpResponse> {
    const scope = repositoryScope(this.name, actions === 'delete' ? '*' : actions);
    return this.#s.send(this.registry, [scope], req);
  }

  async #fail(res: HttpResponse, what: string): Promise<AirlockError> {
    const err = await this.#s.responseError(res, { registry: this.registry, repository: this.name, what });
    const after = header(res, 'retry-after');
    if (after !== undefined && err.detail) err.detail.retryAfter = after;
    return err;
  }

  #side(): { side?: 'source' | 'destination' } {
    const s = this.#s.side;
    return s === 'source' || s === 'destination' ? { side: s } : {};
  }
}

/** Worth another upload from a fresh session: 5xx, 429, 408, a lost or confused session, or a connection that broke. */
function isTransientUploadError(e: unknown): boolean {
  if (isAirlockError(e)) {
    const status = e.detail?.status;
    if (typeof status === 'number') {
      // The session is gone or out of step with us (a broken PATCH may still have been
      // written after we asked for the upload status): a fresh session sets that right.
      const code = e.detail?.registryError;
      if (status === 416 || code === 'BLOB_UPLOAD_UNKNOWN' || code === 'BLOB_UPLOAD_INVALID') return true;
      return isRetryableStatus(status);
    }
    if (e.code === 'DIGEST_MISMATCH' || e.code === 'SIZE_MISMATCH' || e.code === 'ABORTED') return false;
  }
  return isTransientError(e);
}

function retryAfterOf(e: unknown): string | undefined {
  const v = isAirlockError(e) ? e.detail?.retryAfter : undefined;
  return typeof v === 'string' ? v : undefined;
}

/** Resumes of one blob download, whatever progress they make: a link that breaks every few bytes is not worth it. */
const MAX_RESUMES = 64;

/** The first byte of `Content-Range: bytes FIRST-LAST/SIZE` (RFC 9110 §14.4). */
function rangeStart(v: string | undefined): number | undefined {
  const m = v === undefined ? null : /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/i.exec(v.trim());
  return m ? Number(m[1]) : undefined;
}

function acceptFor(mediaType: string): string {
  return [mediaType, ...MANIFEST_ACCEPT.split(', ').filter((t) => t !== mediaType)].join(', ');
}

function mediaTypeOf(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const t = contentType.split(';')[0]!.trim();
  return t === '' ? undefined : t;
}

function withDigest(url: URL, digest: Digest): URL {
  const u = new URL(url);
  u.searchParams.set('digest', digest);
  return u;
}

/** Retries of a manifest PUT refused while another writer completes the same blobs (see pushManifest). */
const MANIFEST_BLOB_RACE_RETRIES = 4;

function isBlobLinkRace(e: AirlockError): boolean {
  const codes = e.detail?.registryErrors;
  return e.detail?.status === 400 && Array.isArray(codes) && codes.some((c) => c === 'MANIFEST_BLOB_UNKNOWN' || c === 'BLOB_UNKNOWN');
}

/** RFC 8288 `Link: <url>; rel="next"`, resolved against the request URL. */
export function nextLink(link: string | undefined, base: URL): URL | undefined {
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /\brel\s*=\s*"?next"?/i.test(m[2]!)) {
      const next = new URL(m[1]!, base);
      // Never let pagination carry the session to another origin.
      if (next.origin !== base.origin) return undefined;
      return next;
    }
  }
  return undefined;
}

async function readJson(res: HttpResponse, what: string, repo: Repository): Promise<unknown> {
  const body = await readBody(res, 16 * 1024 * 1024);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new AirlockError('REGISTRY', `${what}: the registry answered something that is not JSON (${redact(res.url)} of ${repo})`);
  }
}
