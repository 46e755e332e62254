import { createHmac, randomBytes } from 'node:crypto';
import { closedError, withoutHeaders, type HttpClient, type HttpResponse } from './http/index.js';
import type { Redactor } from './redact.js';
import type { MadeProof, Token, TokenProvider } from './token.js';
import type { Credential, RenewalPolicy, TokenEngine } from './token-engine.js';
import { describeUrl, ErrorCode, IiotAuthError } from './errors.js';
import { ApiUrlResolver } from './url.js';

/**
 * What a config node hands to action nodes: one platform credential with its
 * HTTP client, its tokens from the shared engine, and API requests with auth
 * applied (invalidate and retry once on 401).
 */
export interface ApiRequest {
  method: string;
  /** Relative to the platform's base URL, or absolute on its origin. */
  url: string;
  headers?: Record<string, string> | undefined;
  body?: string | Buffer | undefined;
  timeoutMs?: number | undefined;
  maxResponseBytes?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface ApiResponse extends HttpResponse {}

export interface PlatformConnectionOptions {
  /** The config node's id: the engine's key. */
  id: string;
  /** Everything that shapes this credential's tokens; see fingerprint(). */
  fingerprint: string;
  provider: TokenProvider;
  http: HttpClient;
  engine: TokenEngine;
  redactor: Redactor;
  /** The platform's renewal policy; the engine's default when absent. */
  renewal?: RenewalPolicy;
  /** Told of each API request and each 429 waited out: what a health view counts. */
  observer?: ConnectionObserver;
}

export interface ConnectionObserver {
  apiRequest(): void;
  rateLimitWait(): void;
}

export class PlatformConnection {
  readonly id: string;
  /** This credential in the engine: its cached token (peek) and state, for the nodes' status. */
  readonly credential: Credential;
  private readonly options: PlatformConnectionOptions;
  /** The base URL parsed once; the URLs of recent requests remembered. */
  private readonly urls: ApiUrlResolver;
  private closed = false;

  constructor(options: PlatformConnectionOptions) {
    this.options = options;
    this.id = options.id;
    this.urls = new ApiUrlResolver(options.provider.baseUrl);
    this.credential = options.engine.credential(options.id, options.fingerprint, options.renewal);
  }

  /** The HTTP client of this credential (its TLS and proxy settings). */
  get http(): HttpClient {
    return this.options.http;
  }

  get baseUrl(): string {
    return this.options.provider.baseUrl;
  }

  getToken(): Promise<Token> {
    const { provider, http } = this.options;
    if (this.closed) return this.tokenAfterClose();
    return this.credential.get(() => provider.fetchToken(http));
  }

  /**
   * A request of an old flow still running after its config node closed
   * (a redeploy): it may use the cached token, but never fetch one through
   * its closed client. The token state is shared with the new config node
   * of the same id, which must not inherit this client's CLOSED failure.
   */
  private async tokenAfterClose(): Promise<Token> {
    const token = this.credential.peek();
    if (token) return token;
    throw closedError();
  }

  /** A token from freshly fetched credentials, not the cache (after a key rotation). */
  renewToken(): Promise<Token> {
    this.credential.drop();
    return this.getToken();
  }

  /**
   * A new token now (a user asked for it), past the cache and any back-off;
   * joins the token request in flight, never a second one.
   */
  renew(): Promise<Token> {
    const { provider, http } = this.options;
    if (this.closed) return Promise.reject(closedError());
    return this.credential.renew(() => provider.fetchToken(http));
  }

  /**
   * An API call with the platform's auth. `timeoutMs` bounds the whole call:
   * waiting for a token, the request, a retry after 401 or 429.
   */
  async request(req: ApiRequest): Promise<ApiResponse> {
    const url = this.urls.resolve(req.url);
    this.options.observer?.apiRequest();
    try {
      return await this.requestWithin(req, url);
    } catch (err) {
      // Say which limit ran out: the message's, which covers the token wait and any retry.
      if (req.timeoutMs !== undefined && err instanceof IiotAuthError && err.code === ErrorCode.HTTP_TIMEOUT && !(err instanceof TokenWaitTimeout)) {
        throw new IiotAuthError(
          ErrorCode.HTTP_TIMEOUT,
          `${describeUrl(url)} did not answer within ${req.timeoutMs} ms (the message's timeout, waiting for the token included): check that the server is up and reachable, or raise the timeout`,
        );
      }
      throw err;
    }
  }

  private async requestWithin(req: ApiRequest, url: URL): Promise<ApiResponse> {
    const { timeoutMs } = req;
    // A message's own timeout covers the token wait and any retry: only then a timer of our own.
    const expired = timeoutMs === undefined ? undefined : AbortSignal.timeout(Math.max(1, timeoutMs));
    const startedAt = Date.now();
    const left = (ms: number) => Math.max(1, startedAt + ms - Date.now());
    const signal = expired && req.signal ? AbortSignal.any([expired, req.signal]) : (expired ?? req.signal);
    const { observer } = this.options;
    const tokenWithin = () => {
      const token = this.getToken();
      return timeoutMs === undefined ? token : withinDeadline(token, left(timeoutMs), timeoutMs, this.baseUrl);
    };
    let token = await tokenWithin();
    const send = async (current: Token) => {
      const { proof } = current;
      // A token bound to a key (DPoP) needs a proof for every send, each redirect hop and retry its own: a copy of the headers to hold it.
      const headers = proof ? { ...current.headers } : current.headers;
      const authNames = proof ? [...Object.keys(headers), proof.header] : Object.keys(headers);
      let made: MadeProof | undefined;
      const sendOnce = () =>
        this.options.http.send({
          method: req.method,
          url: url.href,
          parsedUrl: url,
          headers: withoutHeaders(req.headers, authNames), // auth wins
          auth: { origin: url.origin, headers },
          body: req.body,
          timeoutMs: timeoutMs === undefined ? undefined : left(timeoutMs),
          maxResponseBytes: req.maxResponseBytes,
          signal,
          onRetryWait: observer ? (status: number) => (status === 429 ? observer.rateLimitWait() : undefined) : undefined,
          beforeAuthSend: proof
            ? async (method: string, target: URL) => {
                made = await proof.make(method, target);
                headers[proof.header] = made.value;
              }
            : undefined,
        });
      const response = await sendOnce();
      // A proof refused only for the server's new nonce (RFC 9449 9) goes once more with it.
      return made?.refusedForNonce(response) ? sendOnce() : response;
    };
    let response = await send(token);
    if (this.refusesPermission(response)) return response;
    // The platform no longer accepts this token (revoked, server restarted,
    // clock drift): get a fresh one and try once more. Unless a re-login was
    // just tried and did not help: then the 401 is the answer (the engine
    // spaces re-logins out, so a permanent 401 does not burn a login per message).
    if (response.statusCode === 401 && this.credential.rejected(token.value)) {
      token = await tokenWithin();
      response = await send(token);
      // The fresh token worked: that 401 was a lost session, cured; the next one is news.
      if (response.statusCode !== 401 || this.refusesPermission(response)) this.credential.accepted(token.value);
    }
    return response;
  }

  /** A 401 the platform says is about a permission, not the token: no new token would help. */
  private refusesPermission(response: ApiResponse): boolean {
    return response.statusCode === 401 && this.options.provider.refusesPermission?.(response) === true;
  }

  redact(text: string): string {
    return this.options.redactor.redact(text);
  }

  /** Closes the HTTP client; a deleted config node also loses its cached token. */
  async close(removed: boolean): Promise<void> {
    this.closed = true;
    if (removed) this.credential.drop();
    await this.options.provider.close?.();
    await this.options.http.close();
  }
}

/**
 * The engine's notion of "the same credential": an HMAC of every setting that
 * shapes the tokens, keyed with a per-process random key so the fingerprint
 * reveals nothing about the secrets in it.
 */
const FINGERPRINT_KEY = randomBytes(32);
export function fingerprint(parts: Record<string, unknown>): string {
  const canonical = JSON.stringify(
    Object.keys(parts)
      .sort()
      .map((key) => [key, parts[key] ?? null]),
  );
  return createHmac('sha256', FINGERPRINT_KEY).update(canonical).digest('hex');
}

/** The message's time ran out while it waited for a token. */
class TokenWaitTimeout extends IiotAuthError {}

/** The token, or HTTP_TIMEOUT after `ms`; the shared token request is not cancelled. */
function withinDeadline(token: Promise<Token>, ms: number, totalMs: number, baseUrl: string): Promise<Token> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new TokenWaitTimeout(
          ErrorCode.HTTP_TIMEOUT,
          `no token within ${totalMs} ms: the token endpoint of ${describeUrl(baseUrl)} has not answered yet; the request goes on for the next messages; raise the timeout, or check the platform`,
        ),
      );
    }, ms);
    token.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
