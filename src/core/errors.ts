/**
 * One error class with stable codes. Every message says what happened and what
 * to do, and is built without secrets: callers pass only ids, URLs without query
 * strings, and status codes.
 */
export interface ErrorCodeHelp {
  /** What happened, as a user reads it in docs/error-codes.md. */
  meaning: string;
  /** What to do about it. */
  action: string;
}

/** Codes with their help: the core's below, each platform's in its declaration (`errorCodes`). */
export type ErrorCodeTable = Readonly<Record<string, ErrorCodeHelp>>;

/** A table's codes as constants, each its own name: `codes.X === 'X'`. */
export function codeNames<T extends ErrorCodeTable>(table: T): { readonly [K in keyof T & string]: K } {
  return Object.freeze(Object.fromEntries(Object.keys(table).map((code) => [code, code]))) as { readonly [K in keyof T & string]: K };
}

/** The codes every platform may raise. Their string values are public: flows test `msg.error.code`. */
export const CORE_ERROR_CODES = {
  CONFIG_MISSING: { meaning: 'no config node selected for the platform', action: 'open the node and choose or add one' },
  CREDENTIALS_MISSING: {
    meaning:
      'the config node has no client id, secret, username, password or boarding configuration (an imported flow carries none); status "missing credentials"',
    action: 'open the config node and enter them (the message names them), deploy',
  },
  CONFIG_INVALID: {
    meaning: 'the config node lacks a field, a value is unusable, or a setting in settings.js is',
    action: 'the message names the field or setting; fix it and deploy',
  },
  INPUT_INVALID: {
    meaning:
      'the message cannot be used (no URL, unknown `msg.method`, a relative URL climbing above the base path, a header HTTP cannot carry, an id that is not one plain path segment, a payload that cannot be JSON), or the platform answered 400 to an action; nothing was sent, no token fetched',
    action: 'fix the message: the error names the property',
  },
  AUTH_REJECTED: { meaning: 'the platform refused the credentials or the token (401)', action: 'check them; the message says where they come from' },
  TOKEN_ENDPOINT_ERROR: {
    meaning: 'the token endpoint answered an error (5xx, 429, …), or a redirect: a request that carries credentials never follows one',
    action: "for a redirect, check the configured URL; otherwise usually the platform's problem, the engine retries after a pause",
  },
  TOKEN_RESPONSE_INVALID: {
    meaning: 'the token endpoint answered something that is not a token, or an unusable lifetime',
    action: "check the URL points at the platform, not a proxy or login page; for an `exp` in the past, this machine's clock",
  },
  TOKEN_BACKOFF: { meaning: 'waiting before the next token request after failures', action: 'wait, or fix the cause and deploy' },
  FOREIGN_ORIGIN: { meaning: "an absolute URL on another origin than the platform's", action: 'use a relative URL, or a core http request node' },
  HTTP_TIMEOUT: { meaning: 'no answer within the timeout', action: 'check the server, or raise the timeout' },
  HTTP_CONNECTION_REFUSED: { meaning: 'nothing listens at that address', action: 'check URL and port' },
  HTTP_CONNECTION_RESET: { meaning: 'the server or a proxy dropped the connection', action: 'try later; check proxies' },
  HTTP_HOST_NOT_FOUND: { meaning: 'DNS does not know the host', action: 'check the URL and DNS' },
  HTTP_TLS_ERROR: { meaning: "the server's certificate could not be verified", action: 'add the CA in a TLS config node; check the host name' },
  HTTP_TOO_MANY_REDIRECTS: { meaning: 'more than 5 redirects', action: 'check the URL' },
  HTTP_RESPONSE_TOO_LARGE: { meaning: 'the answer exceeds the size limit (16 MiB by default)', action: 'ask for less (paging), or raise `maxResponseBytes`' },
  HTTP_FAILED: { meaning: 'another transport failure', action: 'the message says which' },
  CLOSED: { meaning: 'the config node was stopped while the request ran', action: 'deploy again' },
  PRECONDITION_FAILED: { meaning: 'the resource changed meanwhile (a stale eTag, 412)', action: 'read it again and re-apply the change' },
  // API answers of action nodes (app registrations, …)
  NOT_FOUND: { meaning: '404: no such resource', action: 'it was deleted, or the id in the message is wrong: list to find it' },
  PERMISSION_DENIED: { meaning: "403: the config node's credentials may not do this", action: 'grant them the rights the message names' },
  QUOTA_EXCEEDED: { meaning: '402: a quota is reached (app registrations per tenancy, say)', action: 'delete unused resources, or raise the quota' },
  RATE_LIMITED: { meaning: '429, and the node did not (or no longer) retry', action: 'wait as long as the message says, then send the message again' },
  API_ERROR: { meaning: 'another error status (5xx, …)', action: "the platform's problem: try again later" },
  API_RESPONSE_INVALID: { meaning: 'the answer is not what the platform sends', action: "check the config node's URL points at the platform" },
  TOO_MANY_PAGES: { meaning: 'a list did not end within 100 pages', action: 'read it page by page with `msg.pageSize`/`msg.pageToken`' },
  /** Something failed that the package did not foresee: a bug. Its raw message is never shown. */
  INTERNAL_ERROR: {
    meaning: "something failed that the package did not foresee (a bug); the message names the kind of error, never a library's raw text",
    action: 'report it, with what the flow did',
  },
} as const satisfies ErrorCodeTable;

export const ErrorCode = codeNames(CORE_ERROR_CODES);

/**
 * The codes a platform declares join this interface (a module augmentation in
 * the platform's own errors.ts, beside its declaration),
 * so an error's code is always a declared one, and the core names none of them.
 */
// biome-ignore lint/suspicious/noEmptyInterface: empty on purpose, the platforms' errors.ts augment it (an alias could not be augmented)
export interface PlatformErrorCodes {}

/** Every declared code: the core's and the platforms'. */
export type ErrorCode = keyof typeof CORE_ERROR_CODES | (keyof PlatformErrorCodes & string);

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
