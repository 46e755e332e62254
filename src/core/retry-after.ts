/**
 * How long a 429 or 503 response asks us to wait, in milliseconds, or
 * undefined when it does not say. `Retry-After` is seconds or an HTTP date
 * (RFC 9110); DataTrails sends seconds in `Archivist-Rate-Limit-Reset`.
 */
export function retryAfterMs(
  headers: Record<string, string | string[] | undefined>,
  now: number = Date.now(),
): number | undefined {
  const retryAfter = first(headers['retry-after']);
  if (retryAfter !== undefined) {
    const parsed = parseDelay(retryAfter, now);
    if (parsed !== undefined) return parsed;
  }
  const reset = first(headers['archivist-rate-limit-reset']);
  if (reset !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(reset)) return Math.round(Number(reset) * 1000);
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
