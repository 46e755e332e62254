/**
 * The HTTP layer, in undici's shape: `client` sends (and `body` reads the
 * answer within its limits), `redirects` holds the redirect policy, `retry`
 * the 429/503 retries and the reading of Retry-After, `errors` maps failures
 * to our codes, `headers` the header reader and filter. This file is the
 * public API; the modules are imported alone only by their tests.
 */
export { HttpClient, DEFAULT_CONNECTIONS_PER_ORIGIN, DEFAULT_IDLE_MS } from './client.js';
export { closedError } from './errors.js';
export { header, withoutHeaders } from './headers.js';
export { DEFAULT_RETRY, retryAfterMs, type RetryPolicy } from './retry.js';
export type { AuthHeaders, HttpClientOptions, HttpRequest, HttpResponse, ProxyOptions, TlsOptions } from './types.js';
