import type { ConnectionOptions } from 'node:tls';
import { EnvHttpProxyAgent, errors as undiciErrors, request, type Dispatcher } from 'undici';
import { describeUrl, ErrorCode, IiotAuthError } from './errors.js';
import { retryAfterMs } from './retry-after.js';

/**
 * The one HTTP layer: a keep-alive dispatcher per config node (TLS and proxy
 * settings of that node), bounded timeouts, response size and redirects, and
 * typed errors. Never touches undici's global dispatcher: Node-RED shares its
 * process with every other node.
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

export class HttpClient {
  private readonly dispatcher: Dispatcher;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxRedirects: number;
  private readonly credentialHeaders: readonly string[];
  private readonly rateLimitHeaders: readonly string[];
  private closed = false;

  constructor(options: HttpClientOptions = {}) {
    const connect = { ...options.tls, timeout: options.connectTimeoutMs ?? 10_000 };
    const proxy = options.proxy;
    this.dispatcher = new EnvHttpProxyAgent({
      connect,
      requestTls: connect,
      keepAliveTimeout: 30_000,
      ...(proxy
        ? {
            httpProxy: proxy.url,
            httpsProxy: proxy.url,
            noProxy: (proxy.noProxy ?? []).join(','),
            ...(proxy.username
              ? { token: `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` }
              : {}),
          }
        : {}),
    });
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
    this.maxRedirects = options.maxRedirects ?? 5;
    this.credentialHeaders = [...CREDENTIAL_HEADERS, ...(options.credentialHeaders ?? []).map((name) => name.toLowerCase())];
    this.rateLimitHeaders = options.rateLimitHeaders ?? [];
  }

  async send(req: HttpRequest): Promise<HttpResponse> {
    const method = req.method.toUpperCase();
    const policy = req.retry === undefined ? DEFAULT_RETRY : req.retry;
    const retryable = policy !== false && SAFE_TO_REPEAT.has(method);
    for (let attempt = 0; ; attempt++) {
      const response = await this.sendFollowingRedirects({ ...req, method });
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dispatcher.close().catch(() => undefined);
  }

  private async sendFollowingRedirects(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    let method = req.method;
    let body = req.body;
    let headers = { ...req.headers };
    for (let hop = 0; ; hop++) {
      const response = await this.sendOnce({ ...req, url, method, body, headers });
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
      const crossOrigin = next.origin !== new URL(url).origin;
      const becomesGet = response.statusCode === 303 || ((response.statusCode === 301 || response.statusCode === 302) && method === 'POST');
      // A body is re-sent by 307/308 (and by 301/302 for methods other than
      // POST): never to another origin. That redirect is the answer instead.
      if (crossOrigin && !becomesGet && body !== undefined && body !== null && body.length > 0) return response;
      if (crossOrigin) headers = withoutHeaders(headers, this.credentialHeaders);
      if (becomesGet) {
        method = 'GET';
        body = undefined;
        headers = withoutHeaders(headers, ['content-type', 'content-length']);
      }
      url = next.href;
    }
  }

  private async sendOnce(req: HttpRequest): Promise<HttpResponse> {
    if (this.closed) throw new IiotAuthError(ErrorCode.CLOSED, 'the connection was closed (the config node was redeployed or stopped)');
    const target = new URL(req.url);
    const headers: Record<string, string> = { ...req.headers };
    if (req.auth && target.origin === req.auth.origin) Object.assign(headers, req.auth.headers);
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    const maxBytes = req.maxResponseBytes ?? this.maxResponseBytes;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    try {
      const res = await request(target, {
        dispatcher: this.dispatcher,
        method: req.method as Dispatcher.HttpMethod,
        headers,
        body: req.body ?? null,
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const body = await readLimited(res.body, maxBytes, res.headers['content-length'], target);
      return { statusCode: res.statusCode, headers: normaliseHeaders(res.headers), body, url: target.href };
    } catch (err) {
      throw toHttpError(err, target, timeoutMs, timeout.aborted);
    }
  }
}

async function readLimited(
  body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown; on(event: 'error', listener: () => void): unknown },
  maxBytes: number,
  contentLength: string | string[] | undefined,
  url: URL,
): Promise<Buffer> {
  const tooLarge = () =>
    new IiotAuthError(
      ErrorCode.HTTP_RESPONSE_TOO_LARGE,
      `the response of ${describeUrl(url)} is larger than ${maxBytes} bytes: ask for less (paging, filters) or raise the limit`,
    );
  // Destroying an unread undici body emits an 'error'; we already know why, so it must not go unhandled.
  body.on('error', () => undefined);
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  if (Number.isFinite(declared) && declared > maxBytes) {
    body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(); // leaving the loop destroys the body
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
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

function normaliseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name.toLowerCase()] = value;
  return out;
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

/** `headers` less those named, case-insensitively: the one header filter of the package. */
export function withoutHeaders(headers: Record<string, string>, names: Iterable<string>): Record<string, string> {
  const drop = new Set([...names].map((name) => name.toLowerCase()));
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !drop.has(name.toLowerCase())));
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
