/**
 * One error class with stable codes. Every message says what happened and what
 * to do, and is built without secrets: callers pass only ids, URLs without query
 * strings, and status codes.
 */
export const ErrorCode = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  CONFIG_MISSING: 'CONFIG_MISSING',
  /** A config node lacks its credentials (an imported flow carries none). */
  CREDENTIALS_MISSING: 'CREDENTIALS_MISSING',
  INPUT_INVALID: 'INPUT_INVALID',
  AUTH_REJECTED: 'AUTH_REJECTED',
  TOKEN_ENDPOINT_ERROR: 'TOKEN_ENDPOINT_ERROR',
  TOKEN_RESPONSE_INVALID: 'TOKEN_RESPONSE_INVALID',
  TOKEN_BACKOFF: 'TOKEN_BACKOFF',
  FOREIGN_ORIGIN: 'FOREIGN_ORIGIN',
  HTTP_TIMEOUT: 'HTTP_TIMEOUT',
  HTTP_CONNECTION_REFUSED: 'HTTP_CONNECTION_REFUSED',
  HTTP_CONNECTION_RESET: 'HTTP_CONNECTION_RESET',
  HTTP_HOST_NOT_FOUND: 'HTTP_HOST_NOT_FOUND',
  HTTP_TLS_ERROR: 'HTTP_TLS_ERROR',
  HTTP_TOO_MANY_REDIRECTS: 'HTTP_TOO_MANY_REDIRECTS',
  HTTP_RESPONSE_TOO_LARGE: 'HTTP_RESPONSE_TOO_LARGE',
  HTTP_FAILED: 'HTTP_FAILED',
  CLOSED: 'CLOSED',
  AGENT_STATE_ERROR: 'AGENT_STATE_ERROR',
  AGENT_LOCKED: 'AGENT_LOCKED',
  IAT_EXPIRED: 'IAT_EXPIRED',
  IAT_USED: 'IAT_USED',
  CLOCK_SKEW: 'CLOCK_SKEW',
  SECRET_EXPIRED: 'SECRET_EXPIRED',
  NOT_ONBOARDED: 'NOT_ONBOARDED',
  OFFBOARDED: 'OFFBOARDED',
  PRECONDITION_FAILED: 'PRECONDITION_FAILED',
  // API answers of action nodes (app registrations, …)
  NOT_FOUND: 'NOT_FOUND',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  RATE_LIMITED: 'RATE_LIMITED',
  API_ERROR: 'API_ERROR',
  API_RESPONSE_INVALID: 'API_RESPONSE_INVALID',
  TOO_MANY_PAGES: 'TOO_MANY_PAGES',
  /** Something failed that the package did not foresee: a bug. Its raw message is never shown. */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface IiotAuthErrorOptions {
  /** HTTP status of the response that caused the error, when there was one. */
  statusCode?: number;
  /** Milliseconds the server asked us to wait (Retry-After and the like). */
  retryAfterMs?: number;
  cause?: unknown;
}

export class IiotAuthError extends Error {
  readonly code: ErrorCode;
  readonly statusCode?: number;
  readonly retryAfterMs?: number;

  constructor(code: ErrorCode, message: string, options: IiotAuthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IiotAuthError';
    this.code = code;
    if (options.statusCode !== undefined) this.statusCode = options.statusCode;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

export function isIiotAuthError(value: unknown): value is IiotAuthError {
  return value instanceof IiotAuthError;
}

/** A URL as it may appear in a message: no credentials, no query string, no fragment. */
export function describeUrl(url: string | URL): string {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
