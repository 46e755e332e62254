import type { ConnectionOptions } from 'node:tls';
import { errors as undiciErrors, type Dispatcher } from 'undici';
import { sharedDispatchers, type DispatcherRegistry } from './dispatchers.js';
import { describeUrl, ErrorCode, IiotAuthError } from './errors.js';
import type { HostLimiter } from './host-limiter.js';
import { retryAfterMs } from './retry-after.js';

/**
 * The one HTTP layer: keep-alive connections shared by origin (config nodes
 * with the same TLS and proxy settings share a pool, see dispatchers.ts),
 * bounded timeouts, response size and redirects, and typed errors. Never
 * touches undici's global dispatcher: Node-RED shares its process with every
 * other node.
 */

export type TlsOptions = Pick<
  ConnectionOptions,
  'ca' | 'cert' | 'key' | 'passphrase' | 'rejectUnauthorized' | 'servername' | 'ALPNProtocols'
>;

export interface ProxyOptions {
  url: string;
  /** Host names (or suffixes) reached without the proxy. */
  noProxy?: string[];
  username?: string;
  password?: string;
}

export interface HttpClientOptions {
  tls?: TlsOptions;
  /** An explicit proxy; without one, http_proxy/https_proxy/no_proxy from the environment apply. */
  proxy?: ProxyOptions;
  connectTimeoutMs?: number;
  /** Default time limit of one request, from sending to the last byte of the body. */
  timeoutMs?: number;
  /** Default cap on the response body. */
  maxResponseBytes?: number;
  maxRedirects?: number;
  /** Headers besides the standard ones that identify the caller (the platforms' declarations): never carried to another origin. */
  credentialHeaders?: readonly string[];
  /** Headers besides Retry-After that say, in seconds, how long a 429/503 asks to wait. */
  rateLimitHeaders?: readonly string[];
  /** Connections per origin (shared with every client of the same settings); more requests queue. Default 64. */
  connectionsPerOrigin?: number;
  /** An idle connection closes after this long, whatever the server advertises. Default 30 s. */
  idleMs?: number;
  /** Requests that carry a secret (token requests) go through this limiter, per host. */
  secretRequests?: HostLimiter;
  /** Where the connection pools come from; default the process-wide registry. */
  dispatchers?: DispatcherRegistry;
}

export interface AuthHeaders {
  /** The only origin these headers may be sent to. */
  origin: string;
  headers: Record<string, string>;
}

export interface RetryPolicy {
  /** How often a 429 or 503 is retried, for methods that are safe to repeat. */
  maxRetries: number;
  /** A server asking for a longer wait gets its 429/503 passed on instead. */
  maxWaitMs: number;
}

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  auth?: AuthHeaders;
  timeoutMs?: number;
  maxResponseBytes?: number;
  /** Undefined: the default policy; false: no retry (token and onboarding POSTs). */
  retry?: RetryPolicy | false;
  followRedirects?: boolean;
  /**
   * The request carries a secret in its body or headers (a password, client
   * secret, client assertion, IAT, registration access token): it never
   * follows a redirect, whatever the status. A 3xx answer is a
   * TOKEN_ENDPOINT_ERROR naming the status and where it pointed; nothing is
   * sent anywhere else. `what` names the endpoint in that error, `advice`
   * replaces the default "check the URL" advice.
   */
  carriesSecret?: { what: string; advice?: string };
  signal?: AbortSignal;
  /** `url`, already parsed by the caller: saves parsing it again. */
  parsedUrl?: URL;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** The URL that answered, after redirects. */
  url: string;
}

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 3, maxWaitMs: 30_000 };
const SAFE_TO_REPEAT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that identify the caller: never carried to another origin by a redirect. Platforms add their own (HttpClientOptions). */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

export const DEFAULT_CONNECTIONS_PER_ORIGIN = 64;
export const DEFAULT_IDLE_MS = 30_000;

export class HttpClient {
  private readonly dispatcher: Dispatcher;
  private readonly dispatchers: DispatcherRegistry;
  private readonly dispatcherKey: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxRedirects: number;
  private readonly credentialHeaders: readonly string[];
  private readonly rateLimitHeaders: readonly string[];
  private readonly secretRequests: HostLimiter | undefined;
  private closed = false;

  constructor(options: HttpClientOptions = {}) {
    const connect = { ...options.tls, timeout: options.connectTimeoutMs ?? 10_000 };
    const proxy = options.proxy;
    this.dispatchers = options.dispatchers ?? sharedDispatchers;
    const { key, dispatcher } = this.dispatchers.acquire({
      connect,
      connections: options.connectionsPerOrigin ?? DEFAULT_CONNECTIONS_PER_ORIGIN,
      idleMs: options.idleMs ?? DEFAULT_IDLE_MS,
      ...(proxy
        ? {
            proxy: {
              url: proxy.url,
              noProxy: (proxy.noProxy ?? []).join(','),
              ...(proxy.username
                ? { token: `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` }
                : {}),
            },
          }
        : {}),
    });
    this.dispatcherKey = key;
    this.dispatcher = dispatcher;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
    this.maxRedirects = options.maxRedirects ?? 5;
    this.credentialHeaders = [...CREDENTIAL_HEADERS, ...(options.credentialHeaders ?? []).map((name) => name.toLowerCase())];
    this.rateLimitHeaders = options.rateLimitHeaders ?? [];
    this.secretRequests = options.secretRequests;
  }

  send(req: HttpRequest): Promise<HttpResponse> {
    // Token requests wait their turn per host: a cold start of many credentials stays gentle.
    if (req.carriesSecret && this.secretRequests) return this.secretRequests.run(hostOf(req), () => this.sendRetrying(req));
    return this.sendRetrying(req);
  }

  private async sendRetrying(req: HttpRequest): Promise<HttpResponse> {
    const method = req.method.toUpperCase();
    const policy = req.retry === undefined ? DEFAULT_RETRY : req.retry;
    const retryable = policy !== false && SAFE_TO_REPEAT.has(method);
    for (let attempt = 0; ; attempt++) {
      const response = await this.sendFollowingRedirects(req, method);
      if (!retryable || (response.statusCode !== 429 && response.statusCode !== 503)) return response;
      if (attempt >= policy.maxRetries) return response;
      const wait = retryAfterMs(response.headers, Date.now(), this.rateLimitHeaders) ?? 1000 * 2 ** attempt;
      if (wait > policy.maxWaitMs) return response;
      try {
        await sleep(wait, req.signal);
      } catch {
        // The caller's deadline ran out while waiting to retry: its last answer would be stale now.
        throw new IiotAuthError(
          ErrorCode.HTTP_TIMEOUT,
          `${describeUrl(req.url)} asked to wait ${Math.ceil(wait / 1000)} s (${response.statusCode}), longer than the message's timeout allows: raise the timeout, or try later`,
        );
      }
    }
  }

  /** This client sends nothing more; its connections close when no other client shares them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dispatchers.release(this.dispatcherKey);
  }

  private async sendFollowingRedirects(req: HttpRequest, firstMethod: string): Promise<HttpResponse> {
    let url = req.url;
    let parsed = req.parsedUrl;
    let method = firstMethod;
    let body = req.body;
    let headers = req.headers;
    for (let hop = 0; ; hop++) {
      const response = await this.sendOnce(req, parsed ?? new URL(url), method, body, headers);
      const location = header(response.headers, 'location');
      if (req.carriesSecret && response.statusCode >= 300 && response.statusCode < 400) {
        throw redirectRefused(req.carriesSecret, url, response.statusCode, location);
      }
      if (req.followRedirects === false || !REDIRECTS.has(response.statusCode) || !location) return response;
      if (hop >= this.maxRedirects) {
        throw new IiotAuthError(
          ErrorCode.HTTP_TOO_MANY_REDIRECTS,
          `${describeUrl(req.url)} redirected more than ${this.maxRedirects} times: check the configured URL`,
        );
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        return response; // a Location that is not a URL: the 3xx is the answer
      }
      // Userinfo in a Location is never sent (the auth is the platform's) and must not come back in the reported URL.
      next.username = '';
      next.password = '';
      const crossOrigin = next.origin !== new URL(url).origin;
      const becomesGet = response.statusCode === 303 || ((response.statusCode === 301 || response.statusCode === 302) && method === 'POST');
      // A body is re-sent by 307/308 (and by 301/302 for methods other than
      // POST): never to another origin. That redirect is the answer instead.
      if (crossOrigin && !becomesGet && body !== undefined && body !== null && body.length > 0) return response;
      if (crossOrigin) headers = withoutHeaders(headers ?? {}, this.credentialHeaders);
      if (becomesGet) {
        method = 'GET';
        body = undefined;
        headers = withoutHeaders(headers ?? {}, ['content-type', 'content-length']);
      }
      url = next.href;
      parsed = next;
    }
  }

  private async sendOnce(
    req: HttpRequest,
    target: URL,
    method: string,
    body: string | Buffer | undefined,
    callerHeaders: Record<string, string> | undefined,
  ): Promise<HttpResponse> {
    if (this.closed) throw new IiotAuthError(ErrorCode.CLOSED, 'the connection was closed (the config node was redeployed or stopped)');
    const origin = target.origin;
    // One object per request: the caller's headers with the auth headers on top, for their origin only.
    const headers = req.auth && origin === req.auth.origin ? Object.assign({}, callerHeaders, req.auth.headers) : callerHeaders;
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    const maxBytes = req.maxResponseBytes ?? this.maxResponseBytes;
    // One timeout mechanism: undici's own (headers, then the gaps in the body),
    // plus the deadline checked as the body arrives, so a body that trickles in
    // cannot outlast it either. The caller's signal (a message's timeout) when it has one.
    const deadline = Date.now() + timeoutMs;
    try {
      const res = await this.dispatcher.request({
        origin,
        path: target.search ? `${target.pathname}${target.search}` : target.pathname,
        method: method as Dispatcher.HttpMethod,
        headers: headers ?? null,
        body: body ?? null,
        signal: req.signal ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const data = await readLimited(res.body, maxBytes, res.headers['content-length'], target, deadline);
      // undici hands header names over in lower case already.
      return { statusCode: res.statusCode, headers: res.headers as Record<string, string | string[]>, body: data, url: target.href };
    } catch (err) {
      throw toHttpError(err, target, timeoutMs, false);
    }
  }
}

function hostOf(req: HttpRequest): string {
  try {
    return (req.parsedUrl ?? new URL(req.url)).host;
  } catch {
    return '';
  }
}

/** The response body in one Buffer, within the size limit and the deadline; events, not an async iterator. */
function readLimited(
  body: Dispatcher.ResponseData['body'],
  maxBytes: number,
  contentLength: string | string[] | undefined,
  url: URL,
  deadline: number,
): Promise<Buffer> {
  const tooLarge = () =>
    new IiotAuthError(
      ErrorCode.HTTP_RESPONSE_TOO_LARGE,
      `the response of ${describeUrl(url)} is larger than ${maxBytes} bytes: ask for less (paging, filters) or raise the limit`,
    );
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  return new Promise((resolve, reject) => {
    // Destroying an unread undici body emits an 'error'; we already know why, so it must not go unhandled.
    let failed: Error | undefined;
    const fail = (err: Error) => {
      if (failed) return;
      failed = err;
      body.destroy();
      reject(err);
    };
    body.on('error', (err: Error) => fail(err));
    if (Number.isFinite(declared) && declared > maxBytes) return fail(tooLarge());
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) return fail(tooLarge());
      if (Date.now() > deadline) return fail(new undiciErrors.BodyTimeoutError());
      if (!first) first = chunk;
      else (chunks ??= [first]).push(chunk);
    });
    body.on('end', () => {
      if (failed) return;
      resolve(chunks ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)));
    });
  });
}

function toHttpError(err: unknown, url: URL, timeoutMs: number, timedOut: boolean): IiotAuthError {
  if (err instanceof IiotAuthError) return err;
  const where = describeUrl(url);
  const code = errorCode(err);
  const timeout =
    timedOut ||
    err instanceof undiciErrors.ConnectTimeoutError ||
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError ||
    (err as Error | undefined)?.name === 'TimeoutError';
  if (timeout) {
    return new IiotAuthError(
      ErrorCode.HTTP_TIMEOUT,
      `${where} did not answer within ${timeoutMs} ms: check that the server is up and reachable, or raise the timeout`,
      { cause: err },
    );
  }
  if (code === 'ECONNREFUSED') {
    return new IiotAuthError(
      ErrorCode.HTTP_CONNECTION_REFUSED,
      `${where} refused the connection: check the URL and port, and that the server is running`,
      { cause: err },
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new IiotAuthError(
      ErrorCode.HTTP_HOST_NOT_FOUND,
      `the host of ${where} was not found: check the URL and this machine's DNS`,
      { cause: err },
    );
  }
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ALTNAME|EPROTO/.test(code)) {
    return new IiotAuthError(
      ErrorCode.HTTP_TLS_ERROR,
      `the TLS certificate of ${where} could not be verified (${code}): add the CA in a TLS config node, or check the host name`,
      { cause: err },
    );
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return new IiotAuthError(
      ErrorCode.HTTP_CONNECTION_RESET,
      `${where} closed the connection before answering: the server or a proxy in between dropped it; try again later`,
      { cause: err },
    );
  }
  const detail = code ?? (err as Error | undefined)?.name ?? 'unknown error';
  return new IiotAuthError(ErrorCode.HTTP_FAILED, `the request to ${where} failed (${detail})`, { cause: err });
}

function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_CONNECT' && code !== 'UND_ERR_REQ_ABORTED') return code;
    current = (current as { cause?: unknown }).cause;
  }
  const top = (err as { code?: unknown } | undefined)?.code;
  return typeof top === 'string' ? top : undefined;
}

export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The error for a redirect of a request that carries a secret: names the status and the other origin, never the secret. */
function redirectRefused(endpoint: { what: string; advice?: string }, url: string, status: number, location: string | undefined): IiotAuthError {
  let target = '';
  if (location) {
    try {
      const next = new URL(location, url);
      target = next.origin === new URL(url).origin ? ` to ${describeUrl(next)}` : ` to another origin, ${next.origin}`;
    } catch {
      target = ' to an invalid address';
    }
  }
  return new IiotAuthError(
    ErrorCode.TOKEN_ENDPOINT_ERROR,
    `${endpoint.what} at ${describeUrl(url)} answered ${status} (a redirect${target}); a request that carries credentials never follows a redirect, so nothing was sent there: ${endpoint.advice ?? 'check the configured URL points at the platform itself'}`,
    { statusCode: status },
  );
}

/**
 * The headers less those named, case-insensitively (one helper for the whole
 * package). Cheap on the per-message path: no Set, no entries copies; an
 * absent header set stays absent.
 */
export function withoutHeaders(headers: Record<string, string>, names: readonly string[]): Record<string, string>;
export function withoutHeaders(headers: Record<string, string> | undefined, names: readonly string[]): Record<string, string> | undefined;
export function withoutHeaders(headers: Record<string, string> | undefined, names: readonly string[]): Record<string, string> | undefined {
  if (!headers) return undefined;
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const lower = name.toLowerCase();
    if (!names.some((drop) => drop.toLowerCase() === lower)) out[name] = headers[name]!;
  }
  return out;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
