import type { Dispatcher } from 'undici';
import { sharedDispatchers, type DispatcherRegistry } from '../dispatchers.js';
import type { HostLimiter } from '../host-limiter.js';
import { readLimited } from './body.js';
import { closedError, toHttpError } from './errors.js';
import { CREDENTIAL_HEADERS, followRedirects, type Hop, type RedirectOptions } from './redirects.js';
import { withRetries } from './retry.js';
import type { HttpClientOptions, HttpRequest, HttpResponse } from './types.js';

/**
 * Sending and reading: keep-alive connections shared by origin (config nodes
 * with the same TLS and proxy settings share a pool, see dispatchers.ts),
 * bounded time and response size. Retries (retry.ts) wrap redirects
 * (redirects.ts), which wrap one exchange (sendOnce). Never touches undici's
 * global dispatcher: Node-RED shares its process with every other node.
 */
export const DEFAULT_CONNECTIONS_PER_ORIGIN = 64;
export const DEFAULT_IDLE_MS = 30_000;

export class HttpClient {
  private readonly dispatcher: Dispatcher;
  private readonly dispatchers: DispatcherRegistry;
  private readonly dispatcherKey: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly redirects: RedirectOptions;
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
              ...(proxy.username ? { token: `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` } : {}),
            },
          }
        : {}),
    });
    this.dispatcherKey = key;
    this.dispatcher = dispatcher;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
    this.redirects = {
      maxRedirects: options.maxRedirects ?? 5,
      credentialHeaders: [...CREDENTIAL_HEADERS, ...(options.credentialHeaders ?? []).map((name) => name.toLowerCase())],
    };
    this.rateLimitHeaders = options.rateLimitHeaders ?? [];
    this.secretRequests = options.secretRequests;
  }

  send(req: HttpRequest): Promise<HttpResponse> {
    const exchange = () => withRetries(req, () => followRedirects(req, (hop) => this.sendOnce(req, hop), this.redirects), this.rateLimitHeaders);
    // Token requests wait their turn per host: a cold start of many credentials stays gentle.
    if (req.carriesSecret && this.secretRequests) return this.secretRequests.run(hostOf(req), exchange);
    return exchange();
  }

  /** This client sends nothing more; its connections close when no other client shares them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.dispatchers.release(this.dispatcherKey);
  }

  private async sendOnce(req: HttpRequest, hop: Hop): Promise<HttpResponse> {
    if (this.closed) throw closedError();
    const target = hop.parsed ?? new URL(hop.url);
    const origin = target.origin;
    const auth = req.auth && origin === req.auth.origin ? req.auth : undefined;
    if (auth) await req.beforeAuthSend?.(hop.method, target);
    // One object per request: the caller's headers with the auth headers on top, for their origin only.
    const headers = auth ? Object.assign({}, hop.headers, auth.headers) : hop.headers;
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
        method: hop.method as Dispatcher.HttpMethod,
        headers: headers ?? null,
        body: hop.body ?? null,
        signal: req.signal ?? null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const data = await readLimited(res.body, maxBytes, res.headers['content-length'], target, deadline);
      // undici hands header names over in lower case already.
      return { statusCode: res.statusCode, headers: res.headers as Record<string, string | string[]>, body: data, url: target.href };
    } catch (err) {
      throw toHttpError(err, target, timeoutMs);
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
