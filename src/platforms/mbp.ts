import { declarePlatform, exchangeProvider } from './declaration.js';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { listOf } from '../core/words.js';
import type { HttpRequest, HttpResponse } from '../core/http.js';
import type { Token } from '../core/token.js';
import { expiryFrom } from '../core/lifetime.js';
import { checkBaseUrl } from '../core/url.js';
import { jsonObject, tokenEndpointError } from './response.js';

/**
 * MBP (docs/protocols.md, MBP): a login yields the `user_session` cookie; every
 * request carries it and `X-MBP-Access-Request`, built from the logged-in
 * user. A 401 (empty body) means the session is gone: log in again.
 */
export interface MbpSettings {
  /** Base URL with the context path, e.g. http://host:8080/mbp. */
  url: string;
  username: string;
  password: string;
}

export const LOGIN_PATH = '/api/users/login';
export const SESSION_COOKIE = 'user_session';
export const ACCESS_REQUEST_HEADER = 'x-mbp-access-request';
/** The server deletes sessions 7 days after creation, whatever the cookie says. */
export const MAX_SESSION_S = 7 * 24 * 3600;
const WHAT = 'the MBP login';

export function validateSettings(settings: MbpSettings): MbpSettings {
  const missing = (['username', 'password'] as const).filter((k) => !settings[k].trim());
  if (missing.length > 0) {
    throw new IiotAuthError(ErrorCode.CREDENTIALS_MISSING, `the MBP config lacks the ${listOf(missing)}: open the config node and fill it in`);
  }
  return { ...settings, url: checkBaseUrl(settings.url, 'the MBP URL'), username: settings.username.trim() };
}

export function buildLoginRequest(settings: MbpSettings): HttpRequest {
  return {
    method: 'POST',
    url: `${settings.url}${LOGIN_PATH}`,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username: settings.username, password: settings.password }),
    retry: false,
    carriesSecret: { what: WHAT, advice: 'check that the URL includes the context path (/mbp, or /MBP on older servers) and points at MBP itself' },
    maxResponseBytes: 1024 * 1024,
  };
}

export function readLoginResponse(res: HttpResponse, now: number): Token {
  if (res.statusCode === 404) {
    throw new IiotAuthError(ErrorCode.AUTH_REJECTED, `${WHAT} does not know this user (404): check the username in the MBP config node`, { statusCode: 404 });
  }
  if (res.statusCode === 403 || res.statusCode === 401) {
    throw new IiotAuthError(
      ErrorCode.AUTH_REJECTED,
      `${WHAT} refused the user (${res.statusCode}): the password is wrong, or it is a system user, which cannot log in over the REST API`,
      { statusCode: res.statusCode },
    );
  }
  if (res.statusCode >= 300 && res.statusCode < 400) {
    throw new IiotAuthError(
      ErrorCode.TOKEN_ENDPOINT_ERROR,
      `${WHAT} answered ${res.statusCode} (a redirect): check that the URL includes the context path (/mbp, or /MBP on older servers)`,
      { statusCode: res.statusCode },
    );
  }
  if (res.statusCode !== 200) throw tokenEndpointError(res, WHAT, 'check the username and password');
  const session = sessionCookie(res.headers['set-cookie']);
  if (!session) {
    throw new IiotAuthError(ErrorCode.TOKEN_RESPONSE_INVALID, `${WHAT} succeeded but set no ${SESSION_COOKIE} cookie: check that the URL points at MBP itself, not at a proxy`);
  }
  const user = jsonObject(res, WHAT);
  const accessRequest = accessRequestHeader(user);
  // The cookie's Max-Age, within MBP's 7-day limit; sanitised like every lifetime.
  const expiresAt = expiryFrom(now, { expiresIn: Math.min(session.maxAgeS ?? MAX_SESSION_S, MAX_SESSION_S), expiresInField: 'Max-Age', defaultS: MAX_SESSION_S, what: WHAT });
  return {
    type: 'session',
    value: session.id,
    obtainedAt: now,
    expiresAt,
    headers: { cookie: `${SESSION_COOKIE}=${session.id}`, [ACCESS_REQUEST_HEADER]: accessRequest },
  };
}

/**
 * `X-MBP-Access-Request` from the logged-in user. The server splits it on
 * `;;` and `=`: a value that is empty or contains either breaks its parser, so
 * refuse it here with a clear error instead of a puzzling 400 later.
 */
export function accessRequestHeader(user: Record<string, unknown>): string {
  const parts: Array<[string, string]> = [
    ['firstname', 'firstName'],
    ['lastname', 'lastName'],
    ['username', 'username'],
  ];
  return parts
    .map(([name, field]) => {
      const value = user[field];
      if (typeof value !== 'string' || value.trim() === '' || value.includes('=') || value.includes(';;')) {
        throw new IiotAuthError(
          ErrorCode.CONFIG_INVALID,
          `the MBP user's ${field} is ${typeof value === 'string' && value.trim() !== '' ? 'a value with "=" or ";;"' : 'empty'}, which MBP's X-MBP-Access-Request header cannot carry: give the user a ${field} without them in MBP`,
        );
      }
      return `requesting-entity-${name}=${value}`;
    })
    .join(';;');
}

function sessionCookie(setCookie: string | string[] | undefined): { id: string; maxAgeS?: number } | undefined {
  const cookies = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [];
  for (const cookie of cookies) {
    const [pair, ...attributes] = cookie.split(';').map((part) => part.trim());
    const eq = pair?.indexOf('=') ?? -1;
    if (!pair || eq < 0 || pair.slice(0, eq) !== SESSION_COOKIE) continue;
    const id = pair.slice(eq + 1);
    if (!id) continue;
    const maxAge = attributes.find((a) => /^max-age=/i.test(a));
    const seconds = maxAge ? Number(maxAge.slice(8)) : NaN;
    return Number.isFinite(seconds) && seconds > 0 ? { id, maxAgeS: seconds } : { id };
  }
  return undefined;
}

export const MBP = declarePlatform({
  id: 'mbp',
  label: 'MBP',
  configType: 'iiot-mbp',
  property: 'mbp',
  fields: ['url'],
  credentials: { username: { type: 'text' }, password: { type: 'password' } },
  headers: ['cookie', ACCESS_REQUEST_HEADER],
  configure: ({ text, credentials }) => {
    const settings = validateSettings({ url: text('url'), username: credentials.username ?? '', password: credentials.password ?? '' });
    return {
      provider: exchangeProvider(settings.url, () => buildLoginRequest(settings), readLoginResponse),
      fingerprintParts: { ...settings },
      secrets: [settings.password],
    };
  },
});
