import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpClient } from '../core/http/index.js';
import { Redactor } from '../core/redact.js';
import { isRecordConflict, type KeyedMutex, type RecordLease, type RecordStore, type RecordVersion, type StoredRecord } from '../core/record-store.js';
import type { Token, TokenProvider } from '../core/token.js';
import { authenticate, type ClientCredentials } from './oauth2-client-auth.js';
import { discover, type ServerMetadata } from './oauth2-discovery.js';
import { DpopPolicy, DpopProver } from './oauth2-dpop.js';
import { type OAuth2Settings, providerError, readTokenResponse, sendTokenRequest, tokenEndpointOf } from './oauth2.js';
import { objectBody } from './response.js';

/**
 * The authorization code grant with PKCE (RFC 7636, S256 only) and the
 * refresh token grant (RFC 6749 6) of the iiot-oauth2 config node. A user
 * logs in once in the editor; the refresh token it yields is kept in the
 * package's record store (sealed when encryption is configured), never in
 * the flows or their credentials, and every access token comes from it.
 * A rotated refresh token is written before the access token that came with
 * it is used, and one runtime refreshes at a time (the record's lock): two
 * runtimes sharing a record never send the same refresh token twice, which a
 * server with reuse detection answers by revoking the whole grant.
 */

/** The record of one config node's login: `refreshToken` is sealed at rest. */
export interface OAuth2Session {
  refreshToken: string;
  /** Whose client the token belongs to: a config node changed to another issuer or client has no login. */
  issuer: string;
  clientId: string;
  scope: string;
  /** From the ID token, for display only (see idTokenClaims). */
  sub?: string;
  name?: string;
  loggedInAt: string;
  lastUsedAt?: string;
  /** The DPoP key (PKCS#8 PEM) the login's tokens are bound to, and its algorithm; absent without DPoP. */
  dpopKey?: string;
  dpopAlg?: string;
}

export const SESSION_SECRET_FIELDS = ['refreshToken', 'dpopKey'] as const;

/** The record id of a config node's login. */
export const sessionId = (configId: string): string => `oauth2-${configId}`;

export const LOG_IN_AGAIN = 'log in again in the config dialog';
const WHAT = 'the OAuth 2.0 token endpoint';
/** Failures of a token request after it may have reached the server: only these can have lost the answer to a rotation. */
const MAY_HAVE_BEEN_SENT: ReadonlySet<string> = new Set([ErrorCode.HTTP_CONNECTION_RESET, ErrorCode.HTTP_TIMEOUT, ErrorCode.HTTP_FAILED]);

/** How long a started login may take before its state and verifier are forgotten. */
export const LOGIN_TTL_MS = 10 * 60 * 1000;

export interface PendingLogin {
  configId: string;
  redirectUri: string;
  verifier: string;
  /** The editor user who started it (with write permission); '' without adminAuth. */
  user: string;
  expiresAt: number;
}

/**
 * Logins started in this runtime, by state: each state is 32 random bytes,
 * taken once, and forgotten after LOGIN_TTL_MS. Only the POST route (write
 * permission) adds one, so a callback with a state found here continues a
 * login a write-permitted user began.
 */
export class PendingLogins {
  private readonly pending = new Map<string, PendingLogin>();

  constructor(private readonly now: () => number = Date.now) {}

  start(configId: string, redirectUri: string, user: string): { state: string; challenge: string } {
    this.sweep();
    const state = randomBytes(32).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    this.pending.set(state, { configId, redirectUri, verifier, user, expiresAt: this.now() + LOGIN_TTL_MS });
    return { state, challenge: createHash('sha256').update(verifier).digest('base64url') };
  }

  /** The login of `state`, removed: a second callback with it finds nothing. Undefined when unknown or expired. */
  take(state: string): PendingLogin | undefined {
    const login = this.pending.get(state);
    this.pending.delete(state);
    this.sweep();
    return login && login.expiresAt > this.now() ? login : undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [state, login] of this.pending) if (login.expiresAt <= now) this.pending.delete(state);
  }
}

/** The provider's authorization URL for a started login (RFC 6749 4.1.1, RFC 7636 4.3). */
export function authorizationUrl(endpoint: string, settings: OAuth2Settings, redirectUri: string, state: string, challenge: string): string {
  const url = new URL(endpoint);
  const params = url.searchParams;
  params.set('response_type', 'code');
  params.set('client_id', settings.clientId);
  params.set('redirect_uri', redirectUri);
  if (settings.scope) params.set('scope', settings.scope);
  params.set('state', state);
  params.set('code_challenge', challenge);
  params.set('code_challenge_method', 'S256');
  // OpenID Connect asks for consent before it issues a refresh token (Core 11): offline_access needs prompt=consent.
  if (settings.scope.split(/\s+/).includes('offline_access')) params.set('prompt', 'consent');
  return url.href;
}

/**
 * The ID token's `sub` and `name`, decoded only, for the dialog's "logged in
 * as": the token came straight from the token endpoint over the connection
 * the TLS settings check, with the client's authentication (OpenID Connect
 * Core 3.1.3.7 allows TLS server validation in place of the signature there),
 * and nothing is authorized by it.
 */
export function idTokenClaims(idToken: unknown): { sub?: string; name?: string } {
  if (typeof idToken !== 'string') return {};
  try {
    const claims = decodeJwt(idToken);
    return {
      ...(typeof claims.sub === 'string' ? { sub: claims.sub.slice(0, 200) } : {}),
      ...(typeof claims.name === 'string' ? { name: claims.name.slice(0, 200) } : {}),
    };
  } catch {
    return {};
  }
}

/** The session of a stored record, when it belongs to these settings; undefined when there is no usable login. */
export function sessionOf(record: StoredRecord | undefined, settings: OAuth2Settings): OAuth2Session | undefined {
  const value = record?.value as Partial<OAuth2Session> | undefined;
  if (!value || typeof value.refreshToken !== 'string' || !value.refreshToken) return undefined;
  if (value.issuer !== settings.issuer || value.clientId !== settings.clientId) return undefined;
  return value as OAuth2Session;
}

/** One runtime's logins and refreshes for one config node. */
export class OAuth2LoginClient {
  private metadata: Promise<ServerMetadata> | undefined;
  /** Every refresh token and code this client handled: a server that quotes one in an error must not put it in a message. */
  private readonly tokens = new Redactor();
  /** The DPoP policy of the stored login's key, kept while that key is the stored one (its server nonces with it). */
  private dpop: { key: string | undefined; policy: DpopPolicy } | undefined;
  /** The last refresh request was sent and got no answer: the server may have rotated the token without us learning the new one. */
  private answerLost = false;

  constructor(
    readonly configId: string,
    readonly settings: OAuth2Settings,
    private readonly client: ClientCredentials,
    private readonly store: RecordStore,
    private readonly mutex: KeyedMutex,
  ) {}

  get recordId(): string {
    return sessionId(this.configId);
  }

  async serverMetadata(http: HttpClient): Promise<ServerMetadata> {
    if (!this.metadata) {
      const fetching = discover(http, this.settings.issuer);
      this.metadata = fetching;
      fetching.catch(() => {
        if (this.metadata === fetching) this.metadata = undefined;
      });
    }
    return this.metadata;
  }

  async authorizationEndpoint(http: HttpClient): Promise<string> {
    const endpoint = (await this.serverMetadata(http)).authorizationEndpoint;
    if (!endpoint) {
      throw new IiotAuthError(
        ErrorCode.CONFIG_INVALID,
        "the issuer's metadata names no authorization_endpoint: the server offers no login with the authorization code grant; use the client credentials grant",
      );
    }
    return endpoint;
  }

  /** Exchanges the code of a callback (RFC 6749 4.1.3 with RFC 7636 4.5's verifier) and stores the refresh token. */
  finishLogin(http: HttpClient, code: string, login: PendingLogin, now = new Date()): Promise<OAuth2Session> {
    this.tokens.add(code);
    return this.exchangeCode(http, code, login, now).catch((err: unknown) => {
      throw this.withoutTokens(err);
    });
  }

  private async exchangeCode(http: HttpClient, code: string, login: PendingLogin, now: Date): Promise<OAuth2Session> {
    const metadata = await this.serverMetadata(http);
    const endpoint = tokenEndpointOf(this.settings, this.client, metadata);
    const grant = { grant_type: 'authorization_code', code, redirect_uri: login.redirectUri, code_verifier: login.verifier };
    // A new login gets a new DPoP key: the refresh token may be bound to it (RFC 9449 5), so it is kept with it.
    const dpop = new DpopPolicy(this.settings.dpop);
    const { res, prover } = await sendTokenRequest(http, { settings: this.settings, client: this.client, endpoint, dpop, metadata }, grant);
    readTokenResponse(res, now.getTime(), endpoint.method, this.settings.scope, 'authorization code', '', { prover, dpop: this.settings.dpop });
    const body = objectBody(res) ?? {};
    if (typeof body.refresh_token !== 'string' || !body.refresh_token) {
      throw new IiotAuthError(
        ErrorCode.TOKEN_RESPONSE_INVALID,
        `${WHAT} gave no refresh token: allow the refresh_token grant for the client at the server (OpenID Connect servers: add offline_access to the scope)`,
      );
    }
    this.tokens.add(body.refresh_token);
    const session: OAuth2Session = {
      refreshToken: body.refresh_token,
      issuer: this.settings.issuer,
      clientId: this.settings.clientId,
      scope: typeof body.scope === 'string' ? body.scope : this.settings.scope,
      ...idTokenClaims(body.id_token),
      loggedInAt: now.toISOString(),
      ...dpopFields(prover),
    };
    await this.mutex.run(this.recordId, async () => {
      const current = await this.store.read(this.recordId);
      const version = await this.store.write(this.recordId, { ...session }, current?.version);
      if (this.store.minReplicas > 0) await this.store.acknowledge(this.recordId, version);
    });
    // A new login: a lost answer of the one before says nothing about it.
    this.answerLost = false;
    return session;
  }

  /** The login as the status route shows it: never a token. */
  async status(): Promise<{
    loggedIn: boolean;
    sub?: string | undefined;
    name?: string | undefined;
    scope?: string;
    loggedInAt?: string;
    lastUsedAt?: string | undefined;
  }> {
    const session = sessionOf(await this.store.read(this.recordId), this.settings);
    if (!session) return { loggedIn: false };
    const { sub, name, scope, loggedInAt, lastUsedAt } = session;
    return { loggedIn: true, ...{ sub, name, scope, loggedInAt, lastUsedAt } };
  }

  /**
   * An access token from the stored refresh token (RFC 6749 6): one refresh
   * at a time, in this process (the mutex) and across runtimes (the record's
   * lock); a rotated refresh token is written (compare-and-set) before the
   * access token is returned. `invalid_grant` with a refresh token that is no
   * longer the stored one (another runtime or a new login replaced it) reads
   * the record again; with the stored one, the login is over.
   */
  fetchToken(http: HttpClient): Promise<Token> {
    return this.refresh(http).catch((err: unknown) => {
      throw this.withoutTokens(err);
    });
  }

  private refresh(http: HttpClient): Promise<Token> {
    return this.mutex.run(this.recordId, async () => {
      const lease = await this.store.lock(this.recordId, { ttlMs: 30_000, waitMs: 30_000 });
      if (!lease) {
        throw new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, 'another Node-RED instance has been refreshing this login for 30 s: tried again after a pause');
      }
      try {
        for (let attempt = 0; ; attempt++) {
          const record = await this.store.read(this.recordId);
          const session = sessionOf(record, this.settings);
          if (!record || !session) {
            throw new IiotAuthError(ErrorCode.AUTH_REJECTED, `the OAuth 2.0 config node is not logged in: ${LOG_IN_AGAIN} ("Log in")`);
          }
          const metadata = await this.metadataForTokens(http);
          const endpoint = tokenEndpointOf(this.settings, this.client, metadata);
          this.tokens.add(session.refreshToken);
          const grant = { grant_type: 'refresh_token', refresh_token: session.refreshToken };
          const dpop = await this.dpopOf(session);
          const { res, prover } = await this.sendRefresh(() =>
            sendTokenRequest(http, { settings: this.settings, client: this.client, endpoint, dpop, metadata }, grant),
          );
          const now = Date.now();
          if (res.statusCode !== 200) {
            if (objectBody(res)?.error === 'invalid_grant') {
              const latest = sessionOf(await this.store.read(this.recordId), this.settings);
              if (latest && latest.refreshToken !== session.refreshToken && attempt < 2) continue;
              // The login is over: the refused token is not sent again, and the dialog shows "not logged in".
              await this.endSession(record, lease);
              // A rotating server without a grace period refuses the old token after a lost answer: say so, it is not a revocation.
              const lost = this.answerLost
                ? '; the answer to an earlier refresh was lost (no answer came), so the server had probably rotated the refresh token already'
                : '';
              this.answerLost = false;
              throw new IiotAuthError(
                ErrorCode.AUTH_REJECTED,
                `${WHAT} no longer accepts the stored refresh token (invalid_grant: expired, revoked or used elsewhere)${lost}: ${LOG_IN_AGAIN}`,
                { statusCode: res.statusCode },
              );
            }
            throw providerError(res, endpoint.method, this.settings.scope, 'refresh token', this.settings.resource, this.settings.dpop);
          }
          const body = objectBody(res) ?? {};
          const rotated = typeof body.refresh_token === 'string' && body.refresh_token ? body.refresh_token : session.refreshToken;
          this.tokens.add(rotated);
          const next: OAuth2Session = {
            ...session,
            refreshToken: rotated,
            ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
            lastUsedAt: new Date(now).toISOString(),
            // A key made for this refresh (DPoP turned on after the login) is kept from now on.
            ...dpopFields(prover),
          };
          // The server has rotated the refresh token, whatever we make of the access token: the new one is kept first.
          await this.keep(record.version, next, lease, rotated !== session.refreshToken);
          this.answerLost = false;
          return readTokenResponse(res, now, endpoint.method, this.settings.scope, 'refresh token', this.settings.resource, {
            prover,
            dpop: this.settings.dpop,
          });
        }
      } finally {
        await lease.release();
      }
    });
  }

  /** Sends a refresh request, remembering when it may have reached the server and its answer was lost. */
  private async sendRefresh<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      if (err instanceof IiotAuthError && MAY_HAVE_BEEN_SENT.has(err.code)) this.answerLost = true;
      throw err;
    }
  }

  /**
   * Writes the refreshed session. A lock that expired meanwhile (this process
   * stalled) does not lose a rotated refresh token: the record is written
   * anyway if nobody changed it since it was read. A record that changed (a
   * new login) wins: its refresh token is the one to keep.
   */
  private async keep(version: RecordVersion, next: OAuth2Session, lease: RecordLease, rotated: boolean): Promise<void> {
    let written: RecordVersion;
    try {
      written = await this.store.write(this.recordId, { ...next }, version, lease);
    } catch (err) {
      if (!isRecordConflict(err)) throw err;
      if (err.reason === 'changed') return;
      try {
        written = await this.store.write(this.recordId, { ...next }, version);
      } catch (again) {
        if (isRecordConflict(again)) return;
        throw again;
      }
    }
    if (this.store.minReplicas > 0 && rotated) await this.store.acknowledge(this.recordId, written);
  }

  /**
   * "Log out": the refresh token is revoked at the server when its metadata
   * names a revocation endpoint (RFC 7009 2.1: token and hint, with the
   * client's authentication as at the token endpoint), then the login is
   * cleared from the store with its DPoP key, whatever the server said (the
   * user asked to end it here). `revoked` says whether the server confirmed.
   */
  logout(http: HttpClient): Promise<{ revoked: boolean; reason?: string }> {
    return this.mutex
      .run(this.recordId, async () => {
        const record = await this.store.read(this.recordId);
        const session = sessionOf(record, this.settings);
        if (!session) return { revoked: false, reason: 'not logged in' };
        const outcome = await this.revoke(http, session.refreshToken);
        await this.endSession(record);
        this.dpop = undefined;
        return outcome;
      })
      .catch((err: unknown) => {
        throw this.withoutTokens(err);
      });
  }

  private async revoke(http: HttpClient, refreshToken: string): Promise<{ revoked: boolean; reason?: string }> {
    let metadata: ServerMetadata;
    try {
      metadata = await this.serverMetadata(http);
    } catch (err) {
      return { revoked: false, reason: err instanceof IiotAuthError ? err.message : "the issuer's metadata could not be read" };
    }
    const url = metadata.revocationEndpoint;
    if (!url) return { revoked: false, reason: 'the server names no revocation endpoint (RFC 7009)' };
    const endpoint = tokenEndpointOf(this.settings, this.client, metadata);
    this.tokens.add(refreshToken);
    const form = new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token' });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    await authenticate(endpoint.method, this.client, endpoint.url, form, headers, endpoint.signingAlgs);
    try {
      const res = await http.send({
        method: 'POST',
        url,
        headers,
        body: form.toString(),
        retry: false,
        carriesSecret: { what: 'the OAuth 2.0 revocation endpoint' },
        maxResponseBytes: 64 * 1024,
      });
      // RFC 7009 2.2: 200 whether or not the token was still valid.
      return res.statusCode === 200 ? { revoked: true } : { revoked: false, reason: `the revocation endpoint answered ${res.statusCode}` };
    } catch (err) {
      return { revoked: false, reason: err instanceof IiotAuthError ? this.tokens.redact(err.message) : 'the revocation request failed' };
    }
  }

  /**
   * Forgets the stored login (the config node was deleted): its refresh
   * token is not left behind in the store. A store that cannot be reached
   * keeps it; nothing else depends on this.
   */
  async forget(): Promise<void> {
    await this.endSession(await this.store.read(this.recordId).catch(() => undefined)).catch(() => undefined);
  }

  /** Clears the refresh token of the record as read (compare-and-set: a newer login is kept). */
  private async endSession(record: StoredRecord | undefined, lease?: RecordLease): Promise<void> {
    if (!record?.value.refreshToken) return;
    // The login's DPoP key goes with it: a new login makes a new one.
    const { dpopKey: _key, dpopAlg: _alg, ...rest } = record.value;
    await this.store.write(this.recordId, { ...rest, refreshToken: '' }, record.version, lease).catch((err: unknown) => {
      if (!isRecordConflict(err)) throw err;
    });
  }

  /** The error with every refresh token and code this client handled replaced by "***". */
  private withoutTokens(err: unknown): unknown {
    if (!(err instanceof IiotAuthError)) return err;
    const message = this.tokens.redact(err.message);
    if (message === err.message) return err;
    return new IiotAuthError(err.code, message, {
      ...(err.statusCode !== undefined ? { statusCode: err.statusCode } : {}),
      ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
    });
  }

  /** The DPoP policy with the login's stored key (or none yet: one is made when DPoP is used, and stored). */
  private async dpopOf(session: OAuth2Session): Promise<DpopPolicy> {
    if (this.dpop && this.dpop.key === session.dpopKey) return this.dpop.policy;
    const kept = session.dpopKey ? await DpopProver.restore({ key: session.dpopKey, alg: session.dpopAlg ?? '' }) : undefined;
    if (session.dpopKey) this.tokens.add(session.dpopKey);
    const policy = new DpopPolicy(this.settings.dpop, kept);
    this.dpop = { key: session.dpopKey, policy };
    return policy;
  }

  private metadataForTokens(http: HttpClient): Promise<ServerMetadata> | undefined {
    if (this.settings.tokenUrl && this.settings.clientAuth !== 'auto') return undefined;
    return this.serverMetadata(http);
  }
}

/** The session fields that keep a DPoP key. */
function dpopFields(prover: DpopProver | undefined): Pick<OAuth2Session, 'dpopKey' | 'dpopAlg'> {
  if (!prover) return {};
  const { key, alg } = prover.stored();
  return { dpopKey: key, dpopAlg: alg };
}

/** The token provider of a config node with the authorization code grant. */
export function refreshTokenProvider(login: OAuth2LoginClient): TokenProvider {
  return { baseUrl: login.settings.apiUrl, fetchToken: (http) => login.fetchToken(http) };
}
