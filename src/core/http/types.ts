import type { ConnectionOptions } from 'node:tls';
import type { DispatcherRegistry } from '../dispatchers.js';
import type { HostLimiter } from '../host-limiter.js';
import type { RetryPolicy } from './retry.js';

/** What the HTTP layer is given and gives back; no behaviour here. */

export type TlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'passphrase' | 'rejectUnauthorized' | 'servername' | 'ALPNProtocols'>;

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

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string> | undefined;
  body?: string | Buffer | undefined;
  auth?: AuthHeaders | undefined;
  timeoutMs?: number | undefined;
  maxResponseBytes?: number | undefined;
  /** Undefined: the default policy; false: no retry (token requests and other POSTs that must not run twice). */
  retry?: RetryPolicy | false;
  followRedirects?: boolean;
  /**
   * The request carries a secret in its body or headers (a password, client
   * secret, client assertion, one-time or registration token): it never
   * follows a redirect, whatever the status. A 3xx answer is a
   * TOKEN_ENDPOINT_ERROR naming the status and where it pointed; nothing is
   * sent anywhere else. `what` names the endpoint in that error, `advice`
   * replaces the default "check the URL" advice.
   */
  carriesSecret?: { what: string; advice?: string };
  signal?: AbortSignal | undefined;
  /** Told before each wait for a 429 or 503 answer that is retried (a health view counts them). */
  onRetryWait?: ((statusCode: number, waitMs: number) => void) | undefined;
  /**
   * Runs before each send to the auth origin (the first, each redirect hop,
   * each retry) with the method and URL as sent: a per-request proof (DPoP)
   * is made anew in `auth.headers`.
   */
  beforeAuthSend?: ((method: string, url: URL) => Promise<void>) | undefined;
  /** `url`, already parsed by the caller: saves parsing it again. */
  parsedUrl?: URL | undefined;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** The URL that answered, after redirects. */
  url: string;
}
