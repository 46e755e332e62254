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
  const retryAfter = first(headers['retry-after']);
  if (retryAfter !== undefined) {
    const parsed = parseDelay(retryAfter, now);
    if (parsed !== undefined) return parsed;
  }
  for (const name of resetHeaders) {
    const reset = first(headers[name.toLowerCase()]);
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

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
