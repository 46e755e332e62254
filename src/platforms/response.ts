import { describeUrl, ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpResponse } from '../core/http.js';
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

/** A lifetime in seconds: `expires_in` when present and sane, else undefined. */
export function optionalSeconds(body: Record<string, unknown>, field: string, what: string): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  const seconds = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) {
    throw new IiotAuthError(ErrorCode.TOKEN_RESPONSE_INVALID, `${what} answered with an invalid "${field}": expected a positive number of seconds`);
  }
  return seconds;
}

/** The `exp` claim of a JWT, in epoch seconds, without verifying it (the platform does that). */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The error for a token endpoint that did not answer 2xx. 401 and 403 get the
 * platform's own explanation (`rejected`); every other status a generic one.
 */
export function tokenEndpointError(res: HttpResponse, what: string, rejected: string): IiotAuthError {
  const status = res.statusCode;
  const retry = retryAfterMs(res.headers);
  const extra = retry !== undefined ? { retryAfterMs: retry } : {};
  if (status === 401 || status === 403) {
    return new IiotAuthError(ErrorCode.AUTH_REJECTED, `${what} rejected the credentials (${status}): ${rejected}`, { statusCode: status });
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
    `${what} refused the token request (${status}): check the config node's settings`,
    { statusCode: status, ...extra },
  );
}

/**
 * An OAuth-style bearer token answer (`access_token`, `expires_in`). The
 * lifetime comes from `expires_in`, else the JWT's `exp`, else the platform's
 * documented default.
 */
export function readBearerToken(res: HttpResponse, now: number, what: string, rejected: string, defaultLifetimeS: number): Token {
  if (res.statusCode !== 200) throw tokenEndpointError(res, what, rejected);
  const body = jsonObject(res, what);
  const accessToken = requiredString(body, 'access_token', what);
  const expiresIn = optionalSeconds(body, 'expires_in', what);
  const exp = jwtExpiry(accessToken);
  const expiresAt = expiresIn !== undefined ? now + expiresIn * 1000 : exp !== undefined ? exp * 1000 : now + defaultLifetimeS * 1000;
  return { type: 'bearer', value: accessToken, obtainedAt: now, expiresAt, headers: { authorization: `Bearer ${accessToken}` } };
}
