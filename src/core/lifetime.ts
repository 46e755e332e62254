import { ErrorCode, IiotAuthError } from './errors.js';

/**
 * The one place where a token's stated lifetime becomes an expiry time.
 * Servers can state anything (0, 1e300, a string, a JWT exp in the past or in
 * the year 30000); the rules below keep every expiry a valid date and token
 * requests per credential at most about one per second:
 *
 * - `expires_in` (seconds, a number or a numeric string) wins when present; it
 *   must be positive, else the answer is TOKEN_RESPONSE_INVALID.
 * - Without it, a JWT's `exp`; one that is not in the future by this
 *   machine's clock is TOKEN_RESPONSE_INVALID (check the clock).
 * - Without either, the platform's documented lifetime.
 * - The result is clamped to [MIN_LIFETIME_MS, MAX_LIFETIME_MS].
 */
export const MIN_LIFETIME_MS = 2_000;
/** Seven days: the longest lifetime any supported platform grants (a login session). */
export const MAX_LIFETIME_MS = 7 * 24 * 3600 * 1000;

export interface LifetimeSources {
  /** The answer's `expires_in` (or max-age) as it came: any JSON value. */
  expiresIn?: unknown;
  /** The field's name, for the error message. */
  expiresInField?: string;
  /** A JWT's `exp` claim as it came (epoch seconds). */
  exp?: unknown;
  /** The platform's documented lifetime in seconds, used when nothing is stated. */
  defaultS: number;
  /** Names the endpoint in errors. */
  what: string;
}

/** The expiry (epoch ms) of a token obtained at `now`, by the rules above. */
export function expiryFrom(now: number, sources: LifetimeSources): number {
  const { expiresIn, exp, defaultS, what } = sources;
  const field = sources.expiresInField ?? 'expires_in';
  if (expiresIn !== undefined && expiresIn !== null) {
    const seconds = typeof expiresIn === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(expiresIn) ? Number(expiresIn) : expiresIn;
    if (typeof seconds !== 'number' || Number.isNaN(seconds) || seconds <= 0) {
      throw new IiotAuthError(
        ErrorCode.TOKEN_RESPONSE_INVALID,
        `${what} answered with an invalid "${field}" (${describe(expiresIn)}): expected a positive number of seconds; check that the URL points at the platform`,
      );
    }
    return now + clampLifetime(seconds * 1000);
  }
  if (typeof exp === 'number' && !Number.isNaN(exp)) {
    const lifetime = exp * 1000 - now;
    if (!(lifetime > 0)) {
      throw new IiotAuthError(
        ErrorCode.TOKEN_RESPONSE_INVALID,
        `${what} answered with a token whose "exp" is ${Math.round(-lifetime / 1000)} s in the past by this machine's clock: check this machine's clock (NTP)`,
      );
    }
    return now + clampLifetime(lifetime);
  }
  return now + clampLifetime(defaultS * 1000);
}

/** A lifetime in ms within [MIN_LIFETIME_MS, MAX_LIFETIME_MS]; anything not a number is the minimum. */
export function clampLifetime(ms: number): number {
  if (Number.isNaN(ms)) return MIN_LIFETIME_MS;
  return Math.min(MAX_LIFETIME_MS, Math.max(MIN_LIFETIME_MS, ms));
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `"${value.slice(0, 20)}"`;
  if (typeof value === 'number') return String(value);
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
