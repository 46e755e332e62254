import { declarePlatform, exchangeProvider } from './declaration.js';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { listOf } from '../core/words.js';
import type { HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token } from '../core/token.js';
import { expiryFrom } from '../core/lifetime.js';
import { checkBaseUrl } from '../core/url.js';
import { jsonObject, objectBody, serverSaid, tokenEndpointError } from './response.js';

/**
 * MBP (docs/protocols.md, MBP): a login yields the `user_session` cookie; every
 * request carries it and `X-MBP-Access-Request`, built from the logged-in
 * user. A 401 with an empty body means the session is gone: log in again; a
 * 401 with MBP's error body is a missing permission: report it, no new login.
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
/** The server's daily sweep deletes sessions older than 7 days, whatever the cookie says: 7 days is the safe bound. */
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
  // MBP's words name the case: "User with username '…' does not exist!", "Invalid password!", "This user is a system user…".
  if (res.statusCode === 404) {
    throw new IiotAuthError(ErrorCode.AUTH_REJECTED, `${WHAT} does not know this user (404)${serverSaid(res)}: check the username in the MBP config node`, {
      statusCode: 404,
    });
  }
  if (res.statusCode === 403 || res.statusCode === 401) {
    throw new IiotAuthError(
      ErrorCode.AUTH_REJECTED,
      `${WHAT} refused the user (${res.statusCode})${serverSaid(res)}: the password is wrong, or it is a system user, which cannot log in over the REST API`,
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
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${WHAT} succeeded but set no ${SESSION_COOKIE} cookie: check that the URL points at MBP itself, not at a proxy`,
    );
  }
  const user = jsonObject(res, WHAT);
  const accessRequest = accessRequestHeader(user);
  // The cookie's Max-Age, within MBP's 7-day limit; sanitised like every lifetime.
  const expiresAt = expiryFrom(now, {
    expiresIn: Math.min(session.maxAgeS ?? MAX_SESSION_S, MAX_SESSION_S),
    expiresInField: 'Max-Age',
    defaultS: MAX_SESSION_S,
    what: WHAT,
  });
  return {
    type: 'session',
    value: session.id,
    obtainedAt: now,
    expiresAt,
    headers: { cookie: `${SESSION_COOKIE}=${session.id}`, [ACCESS_REQUEST_HEADER]: accessRequest },
  };
}

/**
 * `X-MBP-Access-Request` from the logged-in user. MBP splits it on `;;`, each
 * piece on `=`, and takes the text between the first and a second `=` as the
 * value (ACAccessRequest.valueOf); a piece without a value makes it answer 500,
 * a second `=` cuts the value short, and a `;;` in a value starts a piece of
 * its own. It requires no key and uses the values only in its access policies,
 * so a name the user's profile lacks (MBP's names are optional) is left out; a
 * name with `=` or `;;` is refused here with a clear error.
 */
export function accessRequestHeader(user: Record<string, unknown>): string {
  const parts: [string, string][] = [
    ['firstname', 'firstName'],
    ['lastname', 'lastName'],
    ['username', 'username'],
  ];
  const pieces: string[] = [];
  for (const [name, field] of parts) {
    const value = user[field];
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'string' || value.includes('=') || value.includes(';;')) {
      throw new IiotAuthError(
        ErrorCode.CONFIG_INVALID,
        `the MBP user's ${field} is ${typeof value === 'string' ? 'a value with "=" or ";;"' : 'not text'}, which MBP's X-MBP-Access-Request header cannot carry (MBP would cut it short or answer 500): give the user a ${field} without them in MBP`,
      );
    }
    pieces.push(`requesting-entity-${name}=${value}`);
  }
  // Every MBP user has a username; without it the answer is not MBP's user (and an empty header would be a 500).
  if (typeof user.username !== 'string' || user.username === '') {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${WHAT} answered without the user's username: check that the URL points at MBP itself, not at a proxy`,
    );
  }
  return pieces.join(';;');
}

/**
 * MBP answers a missing permission, owner or admin right with 401 and its
 * error body {status, statusCode, timestamp, message, detailMessages}
 * (RestExceptionHandler); a missing or expired session with 401 and no body
 * (SecurityConfiguration's HttpStatusEntryPoint). The first is MBP's answer
 * to the request, which a new login would not change; the second is a lost
 * session, cured by one.
 */
export function refusesPermission(res: HttpResponse): boolean {
  const body = objectBody(res);
  return !!body && typeof body.statusCode === 'number' && typeof body.message === 'string' && 'detailMessages' in body;
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
      provider: exchangeProvider(settings.url, () => buildLoginRequest(settings), readLoginResponse, refusesPermission),
      fingerprintParts: { ...settings },
      secrets: [settings.password],
    };
  },
});
