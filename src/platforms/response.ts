import { decodeJwt } from 'jose';
import { describeUrl, ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpResponse } from '../core/http/index.js';
import { expiryFrom } from '../core/lifetime.js';
import { retryAfterMs } from '../core/http/index.js';
import type { Token } from '../core/token.js';

/**
 * The one reader of server answers every platform's validators share: the
 * body as JSON, the server's own words from an error body, and (below) the
 * status mapping of token endpoints.
 */

/** The body parsed as JSON, or undefined when it is not JSON (an empty body is not). */
export function parseJson(res: HttpResponse): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(res.body.toString('utf8')) as unknown };
  } catch {
    return undefined;
  }
}

/** A JSON object: not null, not an array. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Text for an error message: control characters as spaces, cut at `max` characters. */
export function oneLine(text: string, max: number): string {
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** The body as a JSON object, or undefined when it is anything else. */
export function objectBody(res: HttpResponse): Record<string, unknown> | undefined {
  const parsed = parseJson(res)?.value;
  return isJsonObject(parsed) ? parsed : undefined;
}

/**
 * What an error body says, short and on one line: its `message` (grpc-gateway,
 * Spring), else OAuth's `error` and `error_description` (RFC 6749 5.2), else
 * the first of `errors`. Undefined when it says nothing so. Secrets a server
 * echoes are redacted where the message leaves the node, like every message.
 */
export function serverMessage(res: HttpResponse): string | undefined {
  const body = objectBody(res);
  if (!body) return undefined;
  const text = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value : undefined);
  const oauth = [text(body.error), text(body.error_description)].filter((part) => part !== undefined).join(': ');
  const first =
    Array.isArray(body.errors) && body.errors[0] && typeof body.errors[0] === 'object' ? (body.errors[0] as { message?: unknown }).message : undefined;
  const message = text(body.message) ?? text(oauth) ?? text(first);
  const clean = message && oneLine(message.trim(), 200).trim();
  return clean || undefined;
}

/** serverMessage as the end of an error message: ` (the server said: "…")`, or ''. */
export function serverSaid(res: HttpResponse): string {
  const message = serverMessage(res);
  return message ? ` (the server said: "${message}")` : '';
}

/** Parses a JSON object body, or says which endpoint sent what instead. */
export function jsonObject(res: HttpResponse, what: string): Record<string, unknown> {
  const parsed = parseJson(res)?.value;
  if (parsed === undefined) {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${what} at ${describeUrl(res.url)} answered ${res.statusCode} with a body that is not JSON: check that the URL points at the platform, not at a proxy or login page`,
      { statusCode: res.statusCode },
    );
  }
  if (!isJsonObject(parsed)) {
    throw new IiotAuthError(ErrorCode.TOKEN_RESPONSE_INVALID, `${what} at ${describeUrl(res.url)} answered with JSON that is not an object`, {
      statusCode: res.statusCode,
    });
  }
  return parsed;
}

export function requiredString(body: Record<string, unknown>, field: string, what: string): string {
  const value = body[field];
  if (typeof value !== 'string' || value === '') {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${what} answered without "${field}" (or it is not a non-empty string): the server does not speak the expected protocol`,
    );
  }
  return value;
}

/**
 * An access token as the answer's `field`: a non-empty string of visible
 * ASCII (RFC 6750's b64token and every JWT are). A line break or control
 * character would otherwise reach the Authorization header of the next
 * request, where undici refuses it as an error that blames that request.
 */
export function accessTokenOf(body: Record<string, unknown>, what: string, field = 'access_token'): string {
  const value = requiredString(body, field, what);
  if (!/^[\x21-\x7e]+$/.test(value)) {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${what} answered with a "${field}" holding spaces, control or non-ASCII characters, which no HTTP header can carry: the server does not speak the expected protocol`,
    );
  }
  return value;
}

/** A claim of a JWT as it came, without verifying the JWT (the platform does that); undefined when the token is no JWT. */
export function jwtClaim(token: string, claim: string): unknown {
  try {
    return decodeJwt(token)[claim];
  } catch {
    return undefined; // an opaque token: no claims to read
  }
}

/**
 * The error for a token endpoint that did not answer 2xx. 401 and 403 get the
 * platform's own explanation (`rejected`); every other status a generic one.
 */
export function tokenEndpointError(res: HttpResponse, what: string, rejected: string, rateLimitHeaders: readonly string[] = []): IiotAuthError {
  const status = res.statusCode;
  const retry = retryAfterMs(res.headers, Date.now(), rateLimitHeaders);
  const extra = retry !== undefined ? { retryAfterMs: retry } : {};
  const said = serverSaid(res);
  if (status === 401 || status === 403) {
    return new IiotAuthError(ErrorCode.AUTH_REJECTED, `${what} rejected the credentials (${status}): ${rejected}${said}`, { statusCode: status });
  }
  if (status === 429 || status === 503) {
    return new IiotAuthError(
      ErrorCode.TOKEN_ENDPOINT_ERROR,
      `${what} is busy (${status}): the next token request waits${retry !== undefined ? ` ${Math.ceil(retry / 1000)} s as the server asked` : ''}`,
      { statusCode: status, ...extra },
    );
  }
  if (status >= 500) {
    return new IiotAuthError(
      ErrorCode.TOKEN_ENDPOINT_ERROR,
      `${what} failed on the server side (${status}): the platform has a problem; the token is requested again after a pause`,
      { statusCode: status, ...extra },
    );
  }
  return new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, `${what} refused the token request (${status}): check the config node's settings${said}`, {
    statusCode: status,
    ...extra,
  });
}

/**
 * An OAuth-style bearer token answer (`access_token`, `expires_in`). The
 * lifetime comes from `expires_in`, else the JWT's `exp`, else the platform's
 * documented default, by the rules of core/lifetime.ts.
 */
export function readBearerToken(
  res: HttpResponse,
  now: number,
  what: string,
  rejected: string,
  defaultLifetimeS: number,
  rateLimitHeaders: readonly string[] = [],
): Token {
  if (res.statusCode !== 200) throw tokenEndpointError(res, what, rejected, rateLimitHeaders);
  const body = jsonObject(res, what);
  const accessToken = accessTokenOf(body, what);
  const expiresAt = expiryFrom(now, { expiresIn: body.expires_in, exp: jwtClaim(accessToken, 'exp'), defaultS: defaultLifetimeS, what });
  return { type: 'bearer', value: accessToken, obtainedAt: now, expiresAt, headers: { authorization: `Bearer ${accessToken}` } };
}
