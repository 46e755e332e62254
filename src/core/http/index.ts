/**
 * The HTTP layer, in undici's shape: `client` sends and reads, `redirects`
 * holds the redirect policy, `retry` the 429/503 retries and the reading of
 * Retry-After, `errors` maps failures to our codes, `headers` the helpers.
 */
export { HttpClient, DEFAULT_CONNECTIONS_PER_ORIGIN, DEFAULT_IDLE_MS } from './client.js';
export { closedError } from './errors.js';
export { header, withoutHeaders } from './headers.js';
export { DEFAULT_RETRY, retryAfterMs, type RetryPolicy } from './retry.js';
export type { AuthHeaders, HttpClientOptions, HttpRequest, HttpResponse, ProxyOptions, TlsOptions } from './types.js';
