import { waitOutlastsTimeout } from './errors.js';
import { header } from './headers.js';
import type { HttpRequest, HttpResponse } from './types.js';

/**
 * Retries of a 429 or 503 (undici's retry handler, cut to what we need):
 * only for methods safe to repeat, after the wait the server asks for
 * (Retry-After, or a platform's own reset header), a bounded number of times.
 */
export interface RetryPolicy {
  /** How often a 429 or 503 is retried, for methods that are safe to repeat. */
  maxRetries: number;
  /** A server asking for a longer wait gets its 429/503 passed on instead. */
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 3, maxWaitMs: 30_000 };
const SAFE_TO_REPEAT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** `send` once, and again after each 429/503 the policy allows; the last answer otherwise. */
export async function withRetries(req: HttpRequest, send: () => Promise<HttpResponse>, rateLimitHeaders: readonly string[] = []): Promise<HttpResponse> {
  const policy = req.retry === undefined ? DEFAULT_RETRY : req.retry;
  const retryable = policy !== false && SAFE_TO_REPEAT.has(req.method.toUpperCase());
  for (let attempt = 0; ; attempt++) {
    const response = await send();
    if (!retryable || (response.statusCode !== 429 && response.statusCode !== 503)) return response;
    if (attempt >= policy.maxRetries) return response;
    const wait = retryAfterMs(response.headers, Date.now(), rateLimitHeaders) ?? 1000 * 2 ** attempt;
    if (wait > policy.maxWaitMs) return response;
    req.onRetryWait?.(response.statusCode, wait);
    try {
      await sleep(wait, req.signal);
    } catch {
      throw waitOutlastsTimeout(req.url, wait, response.statusCode);
    }
  }
}

/**
 * How long a 429 or 503 response asks us to wait, in milliseconds, or
 * undefined when it does not say. `Retry-After` is seconds or an HTTP date
 * (RFC 9110); `resetHeaders` are a platform's own headers that carry seconds
 * (its declaration's rateLimitHeaders), read when Retry-After says nothing.
 */
export function retryAfterMs(
  headers: Record<string, string | string[] | undefined>,
  now: number = Date.now(),
  resetHeaders: readonly string[] = [],
): number | undefined {
  const retryAfter = header(headers, 'retry-after');
  if (retryAfter !== undefined) {
    const parsed = parseDelay(retryAfter, now);
    if (parsed !== undefined) return parsed;
  }
  for (const name of resetHeaders) {
    const reset = header(headers, name.toLowerCase());
    if (reset !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(reset)) return Math.round(Number(reset) * 1000);
  }
  return undefined;
}

function parseDelay(value: string, now: number): number | undefined {
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
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
