import { redirectRefused, tooManyRedirects } from './errors.js';
import { header, withoutHeaders } from './headers.js';
import type { HttpRequest, HttpResponse } from './types.js';

/**
 * The redirect policy (undici's redirect handler, with our rules): a request
 * that carries a secret follows none; credentials never reach another
 * origin; a body is never re-sent to another origin; 303 (and 301/302 after
 * a POST) become a GET without body; at most `maxRedirects` hops.
 */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that identify the caller: never carried to another origin. Platforms add their own (HttpClientOptions). */
export const CREDENTIAL_HEADERS: readonly string[] = ['authorization', 'cookie', 'proxy-authorization'];

/** One request on the way: where it goes and what it carries. */
export interface Hop {
  url: string;
  /** `url` parsed, when already known. */
  parsed?: URL | undefined;
  method: string;
  body?: string | Buffer | undefined;
  headers?: Record<string, string> | undefined;
}

export interface RedirectOptions {
  maxRedirects: number;
  /** Lower-case names of every header dropped on the way to another origin. */
  credentialHeaders: readonly string[];
}

/** Sends the request's hops one after the other until an answer stands. */
export async function followRedirects(req: HttpRequest, send: (hop: Hop) => Promise<HttpResponse>, options: RedirectOptions): Promise<HttpResponse> {
  let hop: Hop = { url: req.url, parsed: req.parsedUrl, method: req.method.toUpperCase(), body: req.body, headers: req.headers };
  for (let hops = 0; ; hops++) {
    const response = await send(hop);
    const next = nextHop(req, hop, response, hops, options);
    if (!next) return response;
    hop = next;
  }
}

/** Where `response` sends the request next, or undefined when it is the answer; throws what the policy refuses. */
export function nextHop(req: HttpRequest, hop: Hop, response: HttpResponse, hops: number, options: RedirectOptions): Hop | undefined {
  const { url, method } = hop;
  const status = response.statusCode;
  const location = header(response.headers, 'location');
  if (req.carriesSecret && status >= 300 && status < 400) throw redirectRefused(req.carriesSecret, url, status, location);
  if (req.followRedirects === false || !REDIRECTS.has(status) || !location) return undefined;
  if (hops >= options.maxRedirects) throw tooManyRedirects(req.url, options.maxRedirects);
  let next: URL;
  try {
    next = new URL(location, url);
  } catch {
    return undefined; // a Location that is not a URL: the 3xx is the answer
  }
  // Userinfo in a Location is never sent (the auth is the platform's) and must not come back in the reported URL.
  next.username = '';
  next.password = '';
  const crossOrigin = next.origin !== new URL(url).origin;
  const becomesGet = status === 303 || ((status === 301 || status === 302) && method === 'POST');
  // A body is re-sent by 307/308 (and by 301/302 for methods other than
  // POST): never to another origin. That redirect is the answer instead.
  if (crossOrigin && !becomesGet && hop.body !== undefined && hop.body !== null && hop.body.length > 0) return undefined;
  let headers = hop.headers;
  if (crossOrigin) headers = withoutHeaders(headers ?? {}, options.credentialHeaders);
  if (!becomesGet) return { url: next.href, parsed: next, method, body: hop.body, headers };
  return { url: next.href, parsed: next, method: 'GET', body: undefined, headers: withoutHeaders(headers ?? {}, ['content-type', 'content-length']) };
}
