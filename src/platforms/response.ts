import { describeUrl, ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpResponse } from '../core/http.js';
import { expiryFrom } from '../core/lifetime.js';
import { retryAfterMs } from '../core/retry-after.js';
import type { Token } from '../core/token.js';

/** Helpers every platform's response validators share. */

/** Parses a JSON object body, or says which endpoint sent what instead. */
export function jsonObject(res: HttpResponse, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${what} at ${describeUrl(res.url)} answered ${res.statusCode} with a body that is not JSON: check that the URL points at the platform, not at a proxy or login page`,
      { statusCode: res.statusCode },
    );
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${what} at ${describeUrl(res.url)} answered with JSON that is not an object`,
      { statusCode: res.statusCode },
    );
  }
  return parsed as Record<string, unknown>;
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

/** The `exp` claim of a JWT as it came (epoch seconds, if the issuer follows RFC 7519), without verifying it (the platform does that). */
export function jwtExpiry(token: string): unknown {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown } | null;
    return claims && typeof claims === 'object' ? claims.exp : undefined;
  } catch {
    return undefined;
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
  return new IiotAuthError(
    ErrorCode.TOKEN_ENDPOINT_ERROR,
    `${what} refused the token request (${status}): check the config node's settings${said}`,
    { statusCode: status, ...extra },
  );
}

/**
 * What an OAuth-style error body says (`error`, `error_description`, RFC 6749
 * 5.2), as a suffix for an error message: '' when the body says nothing so.
 * Shortened and stripped of control characters; secrets a server echoes are
 * redacted where the message leaves the node, like every message.
 */
export function serverSaid(res: HttpResponse): string {
  let body: unknown;
  try {
    body = JSON.parse(res.body.toString('utf8'));
  } catch {
    return '';
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return '';
  const { error, error_description: description } = body as Record<string, unknown>;
  const parts = [error, description].filter((part): part is string => typeof part === 'string' && part.trim() !== '');
  if (parts.length === 0) return '';
  const text = parts.join(': ').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return ` (the server said: "${text.length > 200 ? `${text.slice(0, 200)}…` : text}")`;
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
  const accessToken = requiredString(body, 'access_token', what);
  const expiresAt = expiryFrom(now, { expiresIn: body.expires_in, exp: jwtExpiry(accessToken), defaultS: defaultLifetimeS, what });
  return { type: 'bearer', value: accessToken, obtainedAt: now, expiresAt, headers: { authorization: `Bearer ${accessToken}` } };
}
