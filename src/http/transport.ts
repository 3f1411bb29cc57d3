import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { AirlockError, type Side } from '../errors.js';

/**
 * The one HTTP layer of airlock: an undici Agent (keep-alive pools per origin),
 * retries with backoff on connection errors, 408, 429 and 5xx (honouring
 * Retry-After), timeouts, and redirects followed by hand so that credentials
 * never leave the origin they were meant for.
 */
export interface TransportOptions {
  /** extra CA bundle (PEM) trusted on top of the bundled root CAs */
  caFile?: string;
  /** connections per origin */
  concurrency?: number;
  /** retries after the first attempt (default 4) */
  retries?: number;
  /** connect, headers and body-idle timeout in ms (default 60 s) */
  timeoutMs?: number;
  /** first backoff delay in ms; doubles per attempt (default 250) */
  backoffMs?: number;
  /** longest wait we accept from a Retry-After header, in ms (default 60 s) */
  maxRetryAfterMs?: number;
  userAgent?: string;
  /** one line per request; never given headers, so never credentials */
  log?: (line: string) => void;
  side?: Side;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  /** a Uint8Array body can be re-sent on retry; a stream is sent once */
  body?: Uint8Array | Readable;
  signal?: AbortSignal;
  /** follow 301/302/303/307/308 (default false); Authorization is dropped when the origin changes */
  followRedirects?: boolean;
  /** false: never retry (for example a non-idempotent POST that may have had an effect) */
  retry?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** the URL that answered, after redirects */
  url: URL;
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const RETRY_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export function header(res: { headers: HttpResponse['headers'] }, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export class HttpTransport {
  readonly #agent: Agent;
  readonly #retries: number;
  readonly #backoffMs: number;
  readonly #maxRetryAfterMs: number;
  readonly #userAgent: string;
  readonly #log: ((line: string) => void) | undefined;
  readonly #side: Side | undefined;

  constructor(options: TransportOptions = {}) {
    const timeout = options.timeoutMs ?? 60_000;
    let ca: string[] | undefined;
    if (options.caFile !== undefined) {
      let pem: string;
      try {
        pem = readFileSync(options.caFile, 'utf8');
      } catch (e) {
        throw new AirlockError('IO', `CA file ${options.caFile}: cannot be read (${(e as Error).message})`, { cause: e });
      }
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
        throw new AirlockError('USAGE', `CA file ${options.caFile}: holds no PEM certificate`);
      }
      // Giving `ca` replaces Node's roots, so add them back: the file extends them.
      ca = [...rootCertificates, pem];
    }
    this.#agent = new Agent({
      connections: options.concurrency ?? 8,
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout, ...(ca ? { ca } : {}) },
    });
    this.#retries = options.retries ?? 4;
    this.#backoffMs = options.backoffMs ?? 250;
    this.#maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
    this.#userAgent = options.userAgent ?? 'airlock';
    this.#log = options.log;
    this.#side = options.side;
  }

  /**
   * Send a request; retry transient failures; follow redirects when asked. The
   * caller owns the response body and must consume or dump it.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    let method = req.method;
    let body = req.body;
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...lowerKeys(req.headers ?? {}) };
    const origin = req.url.origin;
    for (let hop = 0; ; hop++) {
      const res = await this.#withRetries({ ...req, method, url, headers, ...(body !== undefined ? { body } : {}) });
      if (!req.followRedirects || !REDIRECT_STATUS.has(res.status)) return res;
      const location = header(res, 'location');
      await dump(res);
      if (!location) throw this.#error('REGISTRY', `${method} ${redact(url)}: redirect ${res.status} without a Location header`);
      if (hop >= MAX_REDIRECTS) throw this.#error('REGISTRY', `${method} ${redact(req.url)}: more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, url);
      if (url.protocol === 'https:' && next.protocol !== 'https:') {
        throw this.#error('REGISTRY', `${method} ${redact(url)}: refusing a redirect from https to ${next.protocol}`);
      }
      // Credentials belong to the registry's origin only: a redirect to a blob
      // store (CDN, S3 pre-signed URL) must not see them (RFC 9110 §15.4 leaves
      // this to the client; sigstore-js and containerd drop them too).
      if (next.origin !== origin) delete headers.authorization;
      if (res.status === 303 && method !== 'HEAD') {
        method = 'GET';
        body = undefined;
      }
      url = next;
    }
  }

  async #withRetries(req: HttpRequest & { headers: Record<string, string> }): Promise<HttpResponse> {
    const canRetry = req.retry !== false && !(req.body !== undefined && !(req.body instanceof Uint8Array));
    for (let attempt = 0; ; attempt++) {
      const started = Date.now();
      let res: Dispatcher.ResponseData;
      try {
        res = await this.#agent.request({
          origin: req.url.origin,
          path: req.url.pathname + req.url.search,
          method: req.method,
          headers: req.headers,
          body: req.body ?? null,
          ...(req.signal ? { signal: req.signal } : {}),
        });
      } catch (e) {
        if (req.signal?.aborted) throw new AirlockError('ABORTED', `${req.method} ${redact(req.url)}: cancelled`, { cause: e });
        const code = errorCode(e);
        this.#log?.(`${req.method} ${redact(req.url)} failed: ${code ?? (e as Error).message}`);
        if (canRetry && attempt < this.#retries && code !== undefined && RETRY_ERROR_CODES.has(code)) {
          await sleep(this.#backoff(attempt), req.signal);
          continue;
        }
        throw this.#networkError(req, e, code, attempt + 1);
      }
      this.#log?.(`${req.method} ${redact(req.url)} ${res.statusCode} ${Date.now() - started}ms`);
      const response: HttpResponse = { status: res.statusCode, headers: res.headers, body: res.body, url: req.url };
      if (canRetry && attempt < this.#retries && RETRY_STATUS.has(res.statusCode)) {
        const wait = this.#retryAfter(header(response, 'retry-after')) ?? this.#backoff(attempt);
        if (wait <= this.#maxRetryAfterMs) {
          await dump(response);
          await sleep(wait, req.signal);
          continue;
        }
      }
      return response;
    }
  }

  #backoff(attempt: number): number {
    // Exponential with a little jitter so parallel workers do not retry in step.
    const base = this.#backoffMs * 2 ** attempt;
    return Math.min(base + Math.floor(Math.random() * this.#backoffMs), 30_000);
  }

  /** RFC 9110 §10.2.3: delay-seconds or an HTTP-date. */
  #retryAfter(v: string | undefined): number | undefined {
    if (v === undefined) return undefined;
    if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
    const t = Date.parse(v);
    if (Number.isNaN(t)) return undefined;
    return Math.max(0, t - Date.now());
  }

  #networkError(req: HttpRequest, e: unknown, code: string | undefined, attempts: number): AirlockError {
    const msg = (e as Error).message ?? String(e);
    let hint = 'check the address and that the registry is reachable';
    if (code !== undefined && /TIMEOUT/.test(code)) {
      hint = 'the registry stopped answering; try again later, or raise --timeout or --retries';
    } else if (code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      hint = 'the TLS certificate is not trusted: pass its CA with --ca-file, or --plain-http for an http-only registry';
    } else if (/wrong version number|packet length too long/i.test(msg)) {
      hint = 'the server does not speak TLS: use --plain-http if it is an http-only registry';
    }
    const tries = attempts > 1 ? ` (${attempts} attempts)` : '';
    return this.#error('NETWORK', `${req.method} ${redact(req.url)}: ${code ?? msg}${tries}; ${hint}`, e);
  }

  #error(code: 'NETWORK' | 'REGISTRY', message: string, cause?: unknown): AirlockError {
    return new AirlockError(code, message, {
      ...(cause !== undefined ? { cause } : {}),
      ...(this.#side ? { side: this.#side } : {}),
    });
  }

  /** A line for the --verbose log (never headers, so never credentials). */
  note(line: string): void {
    this.#log?.(line);
  }

  /** Retries after the first attempt, for callers that retry at a higher level (resumed bodies, uploads). */
  get retries(): number {
    return this.#retries;
  }

  /**
   * Wait before retry number `attempt` (0-based): Retry-After when the response
   * gave one we accept, else the exponential backoff. Rejects with ABORTED on the signal.
   */
  async pause(attempt: number, options: { retryAfter?: string | undefined; signal?: AbortSignal | undefined } = {}): Promise<void> {
    const after = this.#retryAfter(options.retryAfter);
    const wait = after !== undefined && after <= this.#maxRetryAfterMs ? after : this.#backoff(attempt);
    await sleep(wait, options.signal);
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** Status codes worth another attempt (RFC 9110 §15.5.9, §15.6; RFC 6585 §4 for 429). */
export function isRetryableStatus(status: number): boolean {
  return RETRY_STATUS.has(status);
}

/**
 * True for failures of the connection or the body (reset, timeout, closed
 * early), found anywhere in the cause chain; false for aborts and for our own
 * size/digest checks, which another attempt would not change.
 */
export function isTransientError(e: unknown): boolean {
  if ((e as { name?: unknown })?.name === 'AbortError') return false;
  let cur: unknown = e;
  for (let i = 0; i < 6 && cur; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (RETRY_ERROR_CODES.has(code) || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return true;
      if (code === 'ABORTED' || code === 'DIGEST_MISMATCH' || code === 'SIZE_MISMATCH' || code === 'UND_ERR_ABORTED') return false;
      if (code === 'NETWORK') return true;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/** Release a response's connection without reading what we do not need. */
export async function dump(res: HttpResponse): Promise<void> {
  try {
    await res.body.dump({ limit: 1 << 20 });
  } catch {
    // a body that fails while being discarded is of no interest
  }
}

/** Read a small body (error documents, JSON listings) up to `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    total += b.length;
    if (total > limit) {
      res.body.destroy();
      throw new AirlockError('REGISTRY', `${redact(res.url)}: response larger than ${limit} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, total);
}

/** The URL without query: upload locations carry opaque state we need not print. */
export function redact(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}

function errorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AirlockError('ABORTED', 'cancelled'));
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new AirlockError('ABORTED', 'cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
