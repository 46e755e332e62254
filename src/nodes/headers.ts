import { withoutHeaders } from '../core/http.js';

/** Header helpers for messages, whose `headers` may be anything a flow put there. */

export function headersOf(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined || v === null) continue;
    out[name] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/** `base` with `overrides` applied, matching names case-insensitively (so `Authorization` is replaced, not doubled). */
export function mergeHeaders(base: Record<string, string>, overrides: Record<string, string>): Record<string, string> {
  return { ...withoutHeaders(base, Object.keys(overrides)), ...overrides };
}
