import { ErrorCode, IiotAuthError, isIiotAuthError } from './errors.js';
import { clampLifetime } from './lifetime.js';
import type { Token } from './token.js';

/**
 * The token cache of one Node-RED runtime. One entry per credential (a config
 * node id plus a fingerprint of everything that affects its tokens), reached
 * through the handle credential() returns. Shaped like jose's
 * createRemoteJWKSet: one fetch in flight at a time, a cool-down after failure,
 * and state that can be read.
 */
export interface TokenEngineOptions {
  now?: () => number;
  /** Returns a number in [0, 1): jitter source, replaceable in tests. */
  random?: () => number;
  /** First wait after a failed token request. */
  backoffInitialMs?: number;
  /** Longest wait between failed token requests. */
  backoffMaxMs?: number;
  /** Told of each token request and each change of a credential as it happens: what a health view counts (no token in it). */
  observer?: CredentialObserver;
}

/** What happened to a credential, pushed to the engine's observer. */
export type CredentialEvent =
  /** `renewal`: a usable token was still held. */
  | { kind: 'fetch-started'; renewal: boolean }
  | { kind: 'fetch-succeeded' }
  | { kind: 'fetch-failed'; error: unknown }
  /** An API's 401 dropped the token: the next message logs in again. */
  | { kind: 'relogin' }
  | { kind: 'dropped' };

export type CredentialObserver = (id: string, event: CredentialEvent) => void;

export type TokenFetcher = () => Promise<Token>;

/** What a health view reads of one credential: a snapshot, no secret. */
export interface CredentialState {
  readonly state: 'empty' | 'valid' | 'renewing' | 'fetching' | 'backoff';
  /** When the cached token expires. */
  readonly expiresAt?: number;
  /** When its renewal starts. */
  readonly renewAt?: number;
  /** Failed token requests in a row. */
  readonly failures: number;
  /** The end of the back-off: no token request before it. */
  readonly retryAt?: number;
  /** The code of the last failure, until a token request succeeds. */
  readonly lastErrorCode?: string;
}

/**
 * One credential in the engine (jose's remote key set, for tokens): what a
 * config node holds. A handle whose credential changed since (another
 * fingerprint registered under its id) sees an empty cache.
 */
export interface Credential {
  readonly id: string;
  readonly fingerprint: string;
  /** A usable token, fetched by `fetch` when needed; concurrent callers share one fetch. */
  get(fetch: TokenFetcher): Promise<Token>;
  /**
   * A new token now, whatever the cache holds and past any back-off (a user
   * asked for it): joins the token request in flight if one runs, so a
   * second press never makes a second request.
   */
  renew(fetch: TokenFetcher): Promise<Token>;
  /** The cached token when it is usable, without starting any fetch or renewal. */
  peek(): Token | undefined;
  /**
   * An API answered 401 to this token. Returns true when the caller should
   * get a token again and repeat its call once: the token is dropped (the
   * next get() fetches a new one), or a newer one has already replaced it.
   * Returns false when the 401 stands as the answer: a re-login was tried
   * lately and its fresh token was refused too (the user lacks a permission,
   * say; a re-login that cured the 401 is reset by accepted()), so the next
   * one waits out the engine's back-off (1 s, 2 s, 4 s, … up to the maximum),
   * and a permanent 401 costs a handful of token requests, not one per message.
   */
  rejected(tokenValue: string): boolean;
  /**
   * The API accepted this token on the retry after a 401: the session or token
   * had really ended, and the re-login cured it. The 401 back-off starts over,
   * so the next independent 401 (another session end minutes or seconds
   * later) re-logs in at once; only a fresh token refused again counts.
   */
  accepted(tokenValue: string): void;
  /** Forgets the credential: its token, back-off and failures (deleted config node, retired credentials). */
  drop(): void;
  readonly state: CredentialState;
}

interface Entry {
  fingerprint: string;
  renewal: RenewalPolicy;
  token?: Token | undefined;
  /** From here on the token is renewed in the background. */
  renewAt: number;
  /** From here on the token is no longer handed out: too close to expiry. */
  staleAt: number;
  inflight?: Promise<Token> | undefined;
  failures: number;
  retryAt: number;
  lastError?: Error | undefined;
  /** Re-logins after an API's 401 since the last one that cured it: their back-off grows with it. */
  rejections: number;
  /** Before this time, a 401 does not drop the token: the re-login was just tried. */
  reloginAt: number;
  /** When the last re-login after a 401 happened. */
  lastReloginAt: number;
}

/**
 * When a credential's tokens are renewed, as fractions of their lifetime.
 * Each platform declares its own (a 5-minute token and a 7-day session need
 * not share one); DEFAULT_RENEWAL holds the numbers every platform uses today.
 */
export interface RenewalPolicy {
  /** Renewal starts when `marginMin` to `marginMin + marginSpread` of the lifetime is left (jittered per token). */
  marginMin: number;
  marginSpread: number;
  /** A token is never handed out in its last `staleMargin` of life (at most `staleMarginMaxMs`), to absorb clock drift and transit. */
  staleMargin: number;
  staleMarginMaxMs: number;
}

export const DEFAULT_RENEWAL: Readonly<RenewalPolicy> = Object.freeze({
  marginMin: 0.15,
  marginSpread: 0.1,
  staleMargin: 0.05,
  staleMarginMaxMs: 30_000,
});

/** The shortest wait is this fraction of the nominal back-off (jitter from 80 % to 120 %). */
export const BACKOFF_JITTER_MIN = 0.8;
const BACKOFF_JITTER_SPREAD = 0.4;

export class TokenEngine {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly observer: CredentialObserver | undefined;

  constructor(options: TokenEngineOptions = {}) {
    this.observer = options.observer;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.backoffInitialMs = options.backoffInitialMs ?? 1_000;
    this.backoffMaxMs = options.backoffMaxMs ?? 60_000;
  }

  /**
   * The credential `id` with its current fingerprint. Called when a config
   * node starts: an unchanged node keeps its token across a redeploy, a
   * changed one loses it. `renewal` is the platform's policy.
   */
  credential(id: string, fingerprint: string, renewal: RenewalPolicy = DEFAULT_RENEWAL): Credential {
    const existing = this.entries.get(id);
    if (existing?.fingerprint === fingerprint) existing.renewal = renewal;
    else this.entries.delete(id);
    const engine = this;
    return {
      id,
      fingerprint,
      get: (fetch) => this.get(id, fingerprint, renewal, fetch),
      renew: (fetch) => this.refresh(id, this.entryOf(id, fingerprint, renewal), fetch),
      peek: () => this.peek(id, fingerprint),
      rejected: (tokenValue) => this.rejected(id, this.current(id, fingerprint), tokenValue),
      accepted: (tokenValue) => this.accepted(this.current(id, fingerprint), tokenValue),
      drop: () => {
        if (!this.current(id, fingerprint)) return;
        this.entries.delete(id);
        this.tell(id, { kind: 'dropped' });
      },
      get state() {
        return engine.stateOf(engine.current(id, fingerprint));
      },
    };
  }

  /** The entry of this credential, unless another fingerprint replaced it. */
  private current(id: string, fingerprint: string): Entry | undefined {
    const entry = this.entries.get(id);
    return entry?.fingerprint === fingerprint ? entry : undefined;
  }

  /** The entry of this credential, made when there is none. */
  private entryOf(id: string, fingerprint: string, renewal: RenewalPolicy): Entry {
    let entry = this.current(id, fingerprint);
    if (!entry) {
      entry = { fingerprint, renewal, renewAt: 0, staleAt: 0, failures: 0, retryAt: 0, rejections: 0, reloginAt: 0, lastReloginAt: 0 };
      this.entries.set(id, entry);
    }
    return entry;
  }

  /** Tells the observer; its failure is its own and never the engine's. */
  private tell(id: string, event: CredentialEvent): void {
    try {
      this.observer?.(id, event);
    } catch {
      // a health view must not break token requests
    }
  }

  private async get(id: string, fingerprint: string, renewal: RenewalPolicy, fetch: TokenFetcher): Promise<Token> {
    const entry = this.entryOf(id, fingerprint, renewal);
    const now = this.now();
    if (entry.token && now < entry.renewAt) return entry.token;
    if (entry.token && now < entry.staleAt) {
      // Still good: hand it out and renew behind the caller's back.
      // A failed renewal is kept in the entry (back-off, state); this caller already has a good token.
      if (now >= entry.retryAt) this.refresh(id, entry, fetch).catch(() => undefined);
      return entry.token;
    }
    if (entry.inflight) return entry.inflight;
    if (now < entry.retryAt) throw this.backoffError(entry, now);
    return this.refresh(id, entry, fetch);
  }

  private peek(id: string, fingerprint: string): Token | undefined {
    const entry = this.current(id, fingerprint);
    return entry?.token && this.now() < entry.staleAt ? entry.token : undefined;
  }

  private rejected(id: string, entry: Entry | undefined, tokenValue: string): boolean {
    if (!entry) return true;
    if (entry.token?.value !== tokenValue) return true; // already replaced (or being replaced): retry with the current one
    const now = this.now();
    if (now < entry.reloginAt) return false;
    // A long quiet spell since the last re-login: this 401 is news, start the back-off over.
    if (now - entry.lastReloginAt > 2 * this.backoffMaxMs) entry.rejections = 0;
    entry.reloginAt = now + this.delay(entry.rejections + 1);
    entry.lastReloginAt = now;
    entry.rejections += 1;
    entry.token = undefined;
    entry.renewAt = 0;
    entry.staleAt = 0;
    this.tell(id, { kind: 'relogin' });
    return true;
  }

  private accepted(entry: Entry | undefined, tokenValue: string): void {
    if (entry?.token?.value !== tokenValue) return;
    entry.rejections = 0;
    entry.reloginAt = 0;
  }

  private stateOf(entry: Entry | undefined): CredentialState {
    if (!entry) return Object.freeze({ state: 'empty', failures: 0 });
    const now = this.now();
    const usable = !!entry.token && now < entry.staleAt;
    let state: CredentialState['state'];
    if (entry.inflight) state = usable ? 'renewing' : 'fetching';
    else if (usable) state = 'valid';
    else if (now < entry.retryAt) state = 'backoff';
    else state = 'empty';
    return Object.freeze({
      state,
      failures: entry.failures,
      ...(entry.token ? { expiresAt: entry.token.expiresAt, renewAt: entry.renewAt } : {}),
      ...(entry.retryAt > now ? { retryAt: entry.retryAt } : {}),
      ...(entry.lastError && isIiotAuthError(entry.lastError) ? { lastErrorCode: entry.lastError.code } : {}),
    });
  }

  private refresh(id: string, entry: Entry, fetch: TokenFetcher): Promise<Token> {
    if (entry.inflight) return entry.inflight;
    const renewal = !!entry.token && this.now() < entry.staleAt;
    const current = () => this.entries.get(id) === entry;
    // Called now (a caller sees its request start at once), but a fetch that throws at once settles only
    // after `inflight` is set below, like any other failure, so it is cleared and never left behind.
    let started: Promise<Token>;
    try {
      started = Promise.resolve(fetch());
    } catch (err) {
      started = Promise.reject(err);
    }
    const inflight = (async () => {
      try {
        const token = sanitise(await started);
        // Cleared before the observer is told, so the state it reads is no longer "fetching".
        entry.inflight = undefined;
        if (current()) {
          this.store(entry, token);
          this.tell(id, { kind: 'fetch-succeeded' });
        }
        return token;
      } catch (err) {
        entry.inflight = undefined;
        // A client closed under a running request (a redeploy) says nothing about the credential.
        if (current() && !(isIiotAuthError(err) && err.code === ErrorCode.CLOSED)) {
          this.recordFailure(entry, err);
          this.tell(id, { kind: 'fetch-failed', error: err });
        }
        throw err;
      }
    })();
    entry.inflight = inflight;
    this.tell(id, { kind: 'fetch-started', renewal });
    return inflight;
  }

  private store(entry: Entry, token: Token): void {
    const lifetime = Math.max(0, token.expiresAt - token.obtainedAt);
    const { marginMin, marginSpread, staleMargin, staleMarginMaxMs } = entry.renewal;
    const margin = lifetime * (marginMin + marginSpread * this.random());
    entry.token = token;
    entry.staleAt = token.expiresAt - Math.min(lifetime * staleMargin, staleMarginMaxMs);
    entry.renewAt = Math.min(token.expiresAt - margin, entry.staleAt);
    entry.failures = 0;
    entry.retryAt = 0;
    entry.lastError = undefined;
  }

  /** The pause after the n-th failure in a row: exponential, jittered, capped. */
  private delay(failures: number): number {
    const exponential = this.backoffInitialMs * 2 ** Math.min(failures - 1, 30);
    // Jitter between 80 % and 120 %, then the cap: many credentials failing at
    // once (a network outage) do not all retry in the same instant.
    return Math.min(this.backoffMaxMs, exponential * (BACKOFF_JITTER_MIN + BACKOFF_JITTER_SPREAD * this.random()));
  }

  private recordFailure(entry: Entry, err: unknown): void {
    entry.failures += 1;
    let delay = this.delay(entry.failures);
    const asked = isIiotAuthError(err) ? err.retryAfterMs : undefined;
    if (asked !== undefined) delay = Math.max(delay, Math.min(asked, this.backoffMaxMs));
    entry.retryAt = this.now() + delay;
    entry.lastError = err instanceof Error ? err : new Error(String(err));
  }

  private backoffError(entry: Entry, now: number): IiotAuthError {
    const seconds = Math.ceil((entry.retryAt - now) / 1000);
    const last = entry.lastError;
    const reason = last ? last.message : 'the last token request failed';
    const code = last && isIiotAuthError(last) ? last.code : ErrorCode.TOKEN_BACKOFF;
    const statusCode = last && isIiotAuthError(last) ? last.statusCode : undefined;
    return new IiotAuthError(code, `${reason} (next token request in ${seconds} s)`, {
      ...(statusCode !== undefined ? { statusCode } : {}),
    });
  }
}

/**
 * The last guard on what a platform module hands over: a token's lifetime
 * within [MIN_LIFETIME_MS, MAX_LIFETIME_MS] (core/lifetime.ts), so its
 * expiry is a valid date and renewals stay spaced, whatever the server said.
 */
function sanitise(token: Token): Token {
  if (!Number.isFinite(token.obtainedAt)) {
    throw new IiotAuthError(ErrorCode.TOKEN_RESPONSE_INVALID, 'the token answer could not be dated: this is a bug, please report it');
  }
  const lifetime = clampLifetime(token.expiresAt - token.obtainedAt);
  const expiresAt = token.obtainedAt + lifetime;
  return expiresAt === token.expiresAt ? token : { ...token, expiresAt };
}
