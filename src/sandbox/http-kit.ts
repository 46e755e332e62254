// The small vocabulary the platform routers share: a request already read in
// full, a reply described as data (the server writes it), and a route table.

import type { IncomingHttpHeaders } from 'node:http';
import type { EndpointName, Lifetimes, DemoCredentials, PlatformName } from './types.js';

export interface SandboxRequest {
  method: string;
  /** Percent-decoded path, without the query. */
  path: string;
  /** The path as sent, percent-encoded. */
  rawPath: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface Reply {
  status: number;
  headers?: Record<string, string | string[]> | undefined;
  /** Serialised as JSON with `content-type: application/json` (unless `headers` name another); no body when undefined. */
  json?: unknown;
  /** A body sent as it is, with the content type `headers` name (a page for a browser); instead of `json`. */
  text?: string;
}

/** `params` are the capture groups of the route's path pattern. */
export type Handler = (request: SandboxRequest, params: string[]) => Reply | Promise<Reply>;

export interface Route {
  endpoint: EndpointName;
  /** Matched against the whole decoded path. */
  path: RegExp;
  /** By HTTP method; '*' answers every method. A method not listed gets 405. */
  methods: Record<string, Handler>;
  /** The platform's clock (epoch ms) when it is not the real one: every answer's Date header shows it. */
  clock?: () => number;
}

/** What every router gets from the server. */
export interface SandboxContext {
  url: string;
  lifetimes: Lifetimes;
  demo: DemoCredentials;
}

/** One imitated platform: its routes, and the hooks the server needs across platforms. */
export interface Platform {
  name: PlatformName;
  routes: Route[];
  /** Whether the request carries a credential of this platform that works right now (for the echo endpoint). */
  authenticates(request: SandboxRequest): Promise<boolean>;
  /** Makes every token or session issued so far stop working. */
  revoke(): void;
  /** Waits for background work (key generation) so that nothing runs after the server stops. */
  settle(): Promise<void>;
}

export function jsonReply(status: number, json: unknown, headers?: Record<string, string | string[]>): Reply {
  return { status, json, headers };
}

export function emptyReply(status: number, headers?: Record<string, string | string[]>): Reply {
  return { status, headers };
}

/** An HTML page for a browser: never cached, never framed (the OAuth 2.0 consent page asks for a click). */
export function htmlReply(status: number, html: string): Reply {
  return {
    status,
    text: html,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      'x-frame-options': 'DENY',
    },
  };
}

/** Text for an HTML page: every character that could end an element or an attribute escaped. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The first value of a header, or undefined. */
export function header(request: SandboxRequest, name: string): string | undefined {
  const value = request.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** The media type without parameters, lower case: 'application/json; charset=utf-8' → 'application/json'. */
export function mediaType(request: SandboxRequest): string {
  return (header(request, 'content-type') ?? '').split(';')[0].trim().toLowerCase();
}

/** The body as a JSON object, or undefined when it is empty, not JSON, or not an object. */
export function jsonObjectBody(request: SandboxRequest): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(request.body.toString('utf8'));
    return isPlainObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The token of `Authorization: Bearer <token>` (scheme case-insensitive), or undefined. */
export function bearerToken(request: SandboxRequest): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header(request, 'authorization') ?? '');
  return match?.[1];
}

/** One cookie's value from the Cookie header(s), or undefined. */
export function cookie(request: SandboxRequest, name: string): string | undefined {
  for (const pair of (header(request, 'cookie') ?? '').split(';')) {
    const separator = pair.indexOf('=');
    if (separator > 0 && pair.slice(0, separator).trim() === name) return pair.slice(separator + 1).trim();
  }
  return undefined;
}

/** Date as the platforms print it: ISO 8601 in UTC without milliseconds ('2021-09-21T16:43:19Z'). */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
