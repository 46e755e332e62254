/** Header helpers of the whole package: one reader, one filter. */

/** The first value of a header (undici hands names over in lower case; a repeated header is an array). */
export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The headers less those named, case-insensitively. Cheap on the
 * per-message path: no Set, no entries copies; an absent header set stays absent.
 */
export function withoutHeaders(headers: Record<string, string>, names: readonly string[]): Record<string, string>;
export function withoutHeaders(headers: Record<string, string> | undefined, names: readonly string[]): Record<string, string> | undefined;
export function withoutHeaders(headers: Record<string, string> | undefined, names: readonly string[]): Record<string, string> | undefined {
  if (!headers) return undefined;
  const out: Record<string, string> = {};
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const lower = name.toLowerCase();
    if (!names.some((drop) => drop.toLowerCase() === lower)) out[name] = headers[name];
  }
  return out;
}
