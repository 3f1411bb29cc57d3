import { HttpTransport } from '../http/transport.js';
import type { OpOptions } from '../content/storage.js';
import { header, readBody } from '../http/transport.js';
import { loadCredentials, type CredentialStore } from './auth.js';
import { nextLink, Repository, type RepositoryTuning } from './repository.js';
import { CATALOG_SCOPE, RegistrySession } from './session.js';

export interface RegistryClientOptions extends RepositoryTuning {
  /** registries spoken to over http:// (host[:port] as written in references) */
  plainHttp?: readonly string[] | ((registry: string) => boolean);
  /** extra CA bundle (PEM) on top of the bundled root CAs */
  caFile?: string;
  /** default: loadCredentials({ env: process.env }) */
  credentials?: CredentialStore;
  userAgent?: string;
  /** per-origin connection limit */
  concurrency?: number;
  retries?: number;
  timeoutMs?: number;
  /** first retry delay in ms (doubles per attempt) */
  backoffMs?: number;
  /** one line per request under --verbose; never credentials or tokens */
  log?: (line: string) => void;
  /** goes into error messages */
  side?: 'source' | 'destination';
}

/**
 * The distribution-spec client: one transport and auth session shared by all
 * repositories it hands out, so keep-alive connections and tokens are reused.
 */
export class RegistryClient {
  readonly #session: RegistrySession;
  readonly #repos = new Map<string, Repository>();
  readonly #tuning: RepositoryTuning;

  constructor(options: RegistryClientOptions = {}) {
    const plain = options.plainHttp;
    const isPlainHttp =
      typeof plain === 'function' ? plain : plain ? (r: string) => plain.includes(r) : () => false;
    const http = new HttpTransport({
      ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.retries !== undefined ? { retries: options.retries } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.backoffMs !== undefined ? { backoffMs: options.backoffMs } : {}),
      userAgent: options.userAgent ?? 'airlock',
      ...(options.log ? { log: options.log } : {}),
      ...(options.side ? { side: options.side } : {}),
    });
    this.#session = new RegistrySession({
      http,
      credentials: options.credentials ?? loadCredentials({ env: process.env }),
      isPlainHttp,
      ...(options.side ? { side: options.side } : {}),
    });
    this.#tuning = {
      ...(options.chunkThreshold !== undefined ? { chunkThreshold: options.chunkThreshold } : {}),
      ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    };
  }

  /** The repository object for `registry/repository`, one per name (it remembers the referrers API state). */
  repository(registry: string, repository: string): Repository {
    const key = `${registry}/${repository}`;
    let r = this.#repos.get(key);
    if (!r) {
      r = new Repository(this.#session, registry, repository, this.#tuning);
      this.#repos.set(key, r);
    }
    return r;
  }

  /** Repository names from `_catalog`, following `Link` pagination. */
  async *catalog(registry: string, options: OpOptions & { n?: number } = {}): AsyncIterable<string> {
    let url: URL | undefined = new URL('_catalog', this.#session.baseUrl(registry));
    if (options.n !== undefined) url.searchParams.set('n', String(options.n));
    while (url) {
      const res = await this.#session.send(registry, [CATALOG_SCOPE], {
        method: 'GET',
        url,
        headers: { accept: 'application/json' },
        signal: options.signal,
      });
      if (res.status !== 200) throw await this.#session.responseError(res, { registry, what: 'listing the catalog' });
      const body = await readBody(res, 16 * 1024 * 1024);
      let repos: unknown;
      try {
        repos = (JSON.parse(body.toString('utf8')) as { repositories?: unknown }).repositories;
      } catch {
        throw this.#session.error('REGISTRY', `listing the catalog of ${registry}: the answer is not JSON`);
      }
      if (Array.isArray(repos)) for (const r of repos) if (typeof r === 'string') yield r;
      url = nextLink(header(res, 'link'), url);
    }
  }

  async close(): Promise<void> {
    await this.#session.http.close();
  }
}
