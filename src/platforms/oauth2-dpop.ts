import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type KeyObject, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { exportJWK, type JWK, SignJWT } from 'jose';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpResponse } from '../core/http/index.js';
import type { MadeProof, RequestProof } from '../core/token.js';
import type { ServerMetadata } from './oauth2-discovery.js';
import { objectBody } from './response.js';

/**
 * DPoP (RFC 9449): tokens bound to a key of the config node, so that a
 * token copied from a log or a proxy is worth nothing without the key. Every
 * request, to the token endpoint and to the API, carries a fresh proof: a
 * JWT signed with that key that names the method and URL (`htm`, `htu`),
 * when (`iat`), a one-time id (`jti`) and, at the API, the access token's
 * hash (`ath`). A server may demand a nonce of its own (`DPoP-Nonce`): the
 * last one of each origin is remembered, and a request the server refused
 * only for lacking it is sent once more.
 */
export const DPOP_SETTINGS = ['auto', 'always', 'never'] as const;
export type DpopSetting = (typeof DPOP_SETTINGS)[number];

/** The algorithms proofs are signed with, best first: ES256 has the smallest keys and proofs, and every DPoP server takes it. */
const DPOP_ALGS = ['ES256', 'PS256', 'RS256'] as const;
type DpopAlg = (typeof DPOP_ALGS)[number];

/** RFC 9449 8.1: a nonce is 1*NQCHAR; a longer one than this is not taken. */
const NONCE = /^[\x21\x23-\x5b\x5d-\x7e]{1,1024}$/;

const makeKeyPair = promisify(generateKeyPair);
const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url');

/** Makes the proofs of one key, and remembers the servers' nonces. */
export class DpopProver {
  private readonly nonces = new Map<string, string>();

  private constructor(
    private readonly key: KeyObject,
    readonly alg: DpopAlg,
    private readonly jwk: JWK,
  ) {}

  /** A new key for the first algorithm the server lists that this client signs with (ES256 when it lists none). */
  static async generate(serverAlgs: readonly string[] = []): Promise<DpopProver> {
    const alg = DPOP_ALGS.find((candidate) => serverAlgs.includes(candidate)) ?? 'ES256';
    // Made off the event loop: an RSA key takes a second, which a running flow must not wait for.
    const pair = alg === 'ES256' ? await makeKeyPair('ec', { namedCurve: 'P-256' }) : await makeKeyPair('rsa', { modulusLength: 2048 });
    return new DpopProver(pair.privateKey, alg, await exportJWK(pair.publicKey));
  }

  /** The prover of a key kept with a login (see `stored`). */
  static async restore(stored: { key: string; alg: string }): Promise<DpopProver> {
    const alg = DPOP_ALGS.find((candidate) => candidate === stored.alg);
    let key: KeyObject | undefined;
    try {
      key = createPrivateKey({ key: stored.key, format: 'pem' });
    } catch {
      key = undefined;
    }
    if (!alg || !key) {
      throw new IiotAuthError(
        ErrorCode.CONFIG_INVALID,
        "the stored login's DPoP key cannot be read (the store was edited or damaged): log in again in the config dialog",
      );
    }
    // The public key's JWK only: a private JWK of RSA carries p, q, dp, dq and qi besides d.
    return new DpopProver(key, alg, await exportJWK(createPublicKey(key)));
  }

  /** The key as the login record keeps it (a secret field, sealed at rest when encryption is configured). */
  stored(): { key: string; alg: DpopAlg } {
    return { key: this.key.export({ format: 'pem', type: 'pkcs8' }).toString(), alg: this.alg };
  }

  /**
   * A proof for one request as it is sent (RFC 9449 4.2), with the nonce
   * last given by its origin; `accessToken` for a request to the API (7).
   * Its answer tells whether the server refused it only for lacking a nonce.
   */
  async make(method: string, url: string | URL, accessToken?: string): Promise<MadeProof> {
    const target = new URL(url);
    // htu is the URL without query and fragment (4.2); userinfo is never sent either.
    target.search = '';
    target.hash = '';
    target.username = '';
    target.password = '';
    const nonce = this.nonces.get(target.origin);
    const value = await new SignJWT({
      htm: method.toUpperCase(),
      htu: target.href,
      ...(accessToken === undefined ? {} : { ath: sha256(accessToken) }),
      ...(nonce ? { nonce } : {}),
    })
      .setProtectedHeader({ alg: this.alg, typ: 'dpop+jwt', jwk: this.jwk })
      .setIssuedAt()
      .setJti(randomUUID())
      .sign(this.key);
    return { value, refusedForNonce: (res) => this.noteAnswer(res, target.origin, nonce) };
  }

  /**
   * Remembers the nonce an answer carries (RFC 9449 8.2, 9). True when the
   * server refused the proof only for lacking that nonce (`use_dpop_nonce`:
   * in the body at the token endpoint, in `WWW-Authenticate` at an API) and
   * it is not the one the proof carried: then the request is worth sending
   * once more. Requests running at once each compare with their own proof's.
   */
  private noteAnswer(res: HttpResponse, origin: string, sent: string | undefined): boolean {
    const value = res.headers['dpop-nonce'];
    const nonce = typeof value === 'string' ? value.trim() : undefined;
    if (!nonce || !NONCE.test(nonce)) return false;
    this.nonces.set(origin, nonce);
    return nonce !== sent && asksForNonce(res);
  }

  /** What each API request with a token bound to this key needs. */
  forToken(accessToken: string): RequestProof {
    return { header: 'dpop', make: (method, url) => this.make(method, url, accessToken) };
  }
}

function asksForNonce(res: HttpResponse): boolean {
  if (res.statusCode === 400) return objectBody(res)?.error === 'use_dpop_nonce';
  if (res.statusCode !== 401) return false;
  const challenge = res.headers['www-authenticate'];
  return /\berror\s*=\s*"?use_dpop_nonce\b/i.test(Array.isArray(challenge) ? challenge.join(', ') : (challenge ?? ''));
}

/** A token endpoint's refusal that says it wants DPoP proofs (RFC 9449 5, 7.1): an error of DPoP's, or one whose description names it. */
export function asksForDpop(res: HttpResponse): boolean {
  if (res.statusCode !== 400 && res.statusCode !== 401) return false;
  const body = objectBody(res);
  if (body?.error === 'invalid_dpop_proof' || body?.error === 'use_dpop_nonce') return true;
  return typeof body?.error_description === 'string' && /\bDPoP\b/i.test(body.error_description);
}

/**
 * Whether a config node's token requests carry proofs, and with which key:
 * `always`; `never`; `auto` once the server turned out to require DPoP of
 * this client (RFC 9449 7.1 lets it). `auto` does not bind tokens because the
 * metadata merely offers DPoP (`dpop_signing_alg_values_supported`, which
 * Keycloak and Okta publish by default): a bound token works only through the
 * authenticated request node and an API that takes DPoP, so flows with get
 * token and a core http request node, and bearer-only APIs, would stop
 * working. Servers seldom say why they refuse (oidc-provider answers a
 * missing proof with a bare `invalid_grant`), so a refusal that may mean it
 * is tried once more with a proof, and DPoP stays on when that one passes.
 * One key per config node, made at its first use (or, for a login, the one
 * kept with its refresh token).
 */
export class DpopPolicy {
  private prover: Promise<DpopProver> | undefined;
  private required: boolean;

  constructor(
    readonly setting: DpopSetting,
    kept?: DpopProver,
  ) {
    if (kept) this.prover = Promise.resolve(kept);
    // A key kept with a login was made because the server wanted DPoP: it still does.
    this.required = kept !== undefined;
  }

  /** The prover for the next token request, or undefined for a request without DPoP. */
  proverFor(metadata: ServerMetadata | undefined): Promise<DpopProver> | undefined {
    const wanted = this.setting === 'always' || (this.setting === 'auto' && this.required);
    return wanted ? this.key(metadata) : undefined;
  }

  /**
   * With `auto`: a refusal of a request without a proof that may mean the
   * server requires DPoP (it says so, or it offers DPoP and refused the
   * grant or request as such): the prover to try once more with.
   */
  trialFor(res: HttpResponse, metadata: ServerMetadata | undefined): Promise<DpopProver> | undefined {
    if (this.setting !== 'auto' || this.required) return undefined;
    const error = objectBody(res)?.error;
    const offered = (metadata?.dpopAlgs.length ?? 0) > 0 && res.statusCode === 400 && (error === 'invalid_grant' || error === 'invalid_request');
    return asksForDpop(res) || offered ? this.key(metadata) : undefined;
  }

  /** The trial passed: this server requires DPoP, from now on every request carries a proof. */
  confirm(): void {
    this.required = true;
  }

  private key(metadata: ServerMetadata | undefined): Promise<DpopProver> {
    if (!this.prover) {
      const making = DpopProver.generate(metadata?.dpopAlgs);
      this.prover = making;
      making.catch(() => {
        if (this.prover === making) this.prover = undefined;
      });
    }
    return this.prover;
  }
}
