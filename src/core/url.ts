import { describeUrl, ErrorCode, IiotAuthError } from './errors.js';

/**
 * Userinfo (`user:password@`, `user@`) before the host of an absolute or
 * protocol-relative URL, as a URL parser would find it: after the scheme and
 * any slashes or backslashes, before the first `/`, `\\`, `?` or `#`. Also
 * `http:user:pass@host` (no slashes), which a parser would take for a path.
 */
const USERINFO = /^(?:[a-z][a-z0-9+.-]*:)?[/\\]*[^/\\?#]*@/i;

/**
 * Resolves an API URL against a platform's base URL. A relative URL is
 * appended to the base URL's path (`/api/devices` on `http://h/ctx` is
 * `http://h/ctx/api/devices`, where RFC 3986 would drop `/ctx`). An absolute
 * URL must stay on the base URL's origin: the platform's credentials go
 * nowhere else. A relative URL must stay below the base path: dot segments
 * (also percent-encoded) that climb above it are refused. So is userinfo
 * (`user:password@`), which would otherwise be dropped without a word.
 */
export function resolveApiUrl(baseUrl: string | URL, target: string): URL {
  const base = typeof baseUrl === 'string' ? new URL(baseUrl) : baseUrl;
  const trimmed = target.trim();
  if (trimmed === '') return base;
  if (/^[a-z][a-z0-9+.-]*:/i.test(trimmed) || trimmed.startsWith('//')) {
    // Before parsing, so that neither the refusal nor a parse error quotes the password.
    if (USERINFO.test(trimmed)) throw userinfoRefused();
    let absolute: URL;
    try {
      absolute = new URL(trimmed, base);
    } catch {
      // Not quoted when it holds an "@": a password with "/" in it ends the host early and breaks the URL.
      throw new IiotAuthError(
        ErrorCode.INPUT_INVALID,
        trimmed.includes('@')
          ? 'the URL is not a valid URL: check the host and port, and remove any user name or password ("user:password@"): this node sends the platform\'s credentials, never those in a URL'
          : `"${trimmed.slice(0, 100)}" is not a valid URL: check the host and port`,
      );
    }
    if (absolute.username || absolute.password) throw userinfoRefused();
    if (absolute.origin !== base.origin) {
      throw new IiotAuthError(
        ErrorCode.FOREIGN_ORIGIN,
        `refused to send the platform's credentials to ${absolute.origin === 'null' ? `a ${absolute.protocol} URL` : describeUrl(absolute)}: only ${base.origin} may receive them; use a relative URL, or a core http request node for other servers`,
      );
    }
    return absolute;
  }
  const basePath = base.pathname.replace(/\/+$/, '');
  const joined = new URL(base.origin);
  const [pathAndQuery, fragment] = splitOnce(trimmed, '#');
  const [path, query] = splitOnce(pathAndQuery, '?');
  if (climbs(path)) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `the URL "${path.slice(0, 100)}" climbs above the platform's base path ${basePath || '/'} with "..": use a path below it, without dot segments`,
    );
  }
  joined.pathname = `${basePath}/${path.replace(/^\/+/, '')}`;
  if (query !== undefined) joined.search = query;
  else if (path === '' && base.search) joined.search = base.search;
  if (fragment !== undefined) joined.hash = fragment;
  return joined;
}

/**
 * The core http request node turns userinfo into Basic authentication; here
 * the platform's auth is applied instead, so it would be dropped without a
 * word, and the URL reported on the output would carry the password.
 */
function userinfoRefused(): IiotAuthError {
  return new IiotAuthError(
    ErrorCode.INPUT_INVALID,
    'the URL holds a user name or password before the host ("user:password@"): this node authenticates with the platform\'s credentials and would not send them; remove them from the URL (to call another service with Basic authentication, use a core http request node)',
  );
}

/**
 * resolveApiUrl for one base URL, parsed once, with the last URLs resolved
 * remembered (a node's URL is usually the same for every message). The URLs
 * handed out are shared: callers must not change them.
 */
export class ApiUrlResolver {
  private base: URL | undefined;
  private readonly recent = new Map<string, URL>();

  constructor(private readonly baseUrl: string) {}

  resolve(target: string): URL {
    const known = this.recent.get(target);
    if (known) return known;
    this.base ??= new URL(this.baseUrl);
    const url = resolveApiUrl(this.base, target);
    if (this.recent.size >= 64) this.recent.clear(); // templated URLs: keep it small
    this.recent.set(target, url);
    return url;
  }
}

/** Checks a configured base URL: http(s), no query, no credentials inside. */
export function checkBaseUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${field} "${value.slice(0, 100)}" is not a URL: enter it like https://host[:port][/path]`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${field} must start with https:// or http://`);
  }
  if (url.username || url.password) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${field} must not contain a user name or password: use the credential fields`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** True when the path's dot segments, decoded as a server might ("%2e", "%2f", "\\", repeatedly), lead above where it starts. */
function climbs(path: string): boolean {
  let depth = 0;
  for (const segment of fullyDecoded(path).split(/[/\\]/)) {
    if (segment === '' || segment === '.') continue;
    depth += segment === '..' ? -1 : 1;
    if (depth < 0) return true;
  }
  return false;
}

function fullyDecoded(text: string): string {
  let current = text;
  for (let i = 0; i < 5; i++) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      next = current.replace(/%2e/gi, '.').replace(/%2f/gi, '/').replace(/%5c/gi, '\\');
    }
    if (next === current) return current;
    current = next;
  }
  return current;
}

/** An id as the package accepts one (client and resource ids, record names): letters, digits, ".", "_" and "-", at most 200. */
export function isIdText(value: string): boolean {
  return /^[A-Za-z0-9._-]{1,200}$/.test(value);
}

/**
 * True when an id can be put into a URL path as one plain segment: not
 * empty, not "." or "..", no slash or backslash, no percent-encoding.
 */
export function isPlainSegment(value: string): boolean {
  return /^[A-Za-z0-9._~-]{1,200}$/.test(value) && !/^\.+$/.test(value);
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}
