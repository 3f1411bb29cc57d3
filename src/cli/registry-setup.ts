import { loadCredentials } from '../registry/auth.js';
import { RegistryClient } from '../registry/client.js';
import type { Logger } from './io.js';

export interface RegistryFlags {
  plainHttp?: boolean;
  authfile?: string;
  caFile?: string;
}

/**
 * One client per distinct TLS setting: the config may give a CA file per registry.
 * Credentials come from --authfile, REGISTRY_AUTH_FILE, the containers auth.json
 * or the docker config; they are never printed.
 */
export interface RegistriesOptions {
  plain: (registry: string) => boolean;
  caFor: (registry: string) => string | undefined;
  authfile?: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
  side: 'source' | 'destination';
  concurrency: number;
  /** retries after the first attempt of a request that failed transiently */
  retries?: number;
  /** connect, response-headers and body-idle timeout of one request, in ms */
  timeoutMs?: number;
}

export class Registries {
  readonly #clients = new Map<string, RegistryClient>();
  readonly #opts: RegistriesOptions;

  constructor(opts: RegistriesOptions) {
    this.#opts = opts;
  }

  client(registry: string): RegistryClient {
    const ca = this.#opts.caFor(registry);
    const key = ca ?? '';
    let c = this.#clients.get(key);
    if (!c) {
      c = new RegistryClient({
        plainHttp: this.#opts.plain,
        ...(ca !== undefined ? { caFile: ca } : {}),
        credentials: loadCredentials({ env: this.#opts.env, ...(this.#opts.authfile !== undefined ? { authfile: this.#opts.authfile } : {}) }),
        userAgent: 'airlock',
        concurrency: this.#opts.concurrency,
        ...(this.#opts.retries !== undefined ? { retries: this.#opts.retries } : {}),
        ...(this.#opts.timeoutMs !== undefined ? { timeoutMs: this.#opts.timeoutMs } : {}),
        side: this.#opts.side,
        log: (line) => this.#opts.log.debug(line),
      });
      this.#clients.set(key, c);
    }
    return c;
  }

  repository(registry: string, repository: string) {
    return this.client(registry).repository(registry, repository);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#clients.values()].map((c) => c.close()));
  }
}
