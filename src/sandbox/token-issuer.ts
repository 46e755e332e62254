// Signs and verifies a platform's RS256 access tokens with a real key pair.
// Each platform has its own issuer, so a token of one is refused by the others.

import { generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT, jwtVerify, type JWTPayload } from 'jose';

const generateRsaKeyPair = promisify(generateKeyPair);

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateRsaKeyPair('rsa', { modulusLength: 2048 });
  return { kid: randomUUID(), privateKey, publicKey };
}

export interface IssuedToken {
  token: string;
  jti: string;
  /** Epoch seconds. */
  iat: number;
  exp: number;
}

export interface TokenIssuerOptions {
  /** The issuer's clock in epoch milliseconds; default Date.now (a platform with a skewed clock passes its own). */
  now?: () => number;
}

/** The public half of the current signing key. */
export interface PublicSigningKey {
  kid: string;
  publicKey: KeyObject;
}

export class TokenIssuer {
  // A promise, so that rotate() is synchronous: from that moment on, old tokens
  // fail verification, and issue() waits for the new key (RSA generation takes
  // a few hundred milliseconds, too long to block the event loop).
  private key: Promise<SigningKey>;
  private readonly now: () => number;

  private constructor(
    readonly issuer: string,
    key: Promise<SigningKey>,
    now: () => number,
  ) {
    this.key = key;
    this.now = now;
  }

  static async create(issuer: string, options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
    const key = newSigningKey();
    await key;
    return new TokenIssuer(issuer, key, options.now ?? Date.now);
  }

  /** The current verification key (it changes with rotate()). */
  async publicKey(): Promise<PublicSigningKey> {
    const { kid, publicKey } = await this.key;
    return { kid, publicKey };
  }

  /**
   * `exp - iat` is the lifetime, as on the real services. `iat` is the current
   * time rounded up to the second (less than a second ahead, like a server
   * clock slightly ahead of the client's), so that the token works for at
   * least `lifetimeSeconds`, as the `expires_in` sent beside it promises;
   * rounding down would make short test lifetimes end early.
   */
  async issue(claims: JWTPayload, lifetimeSeconds: number): Promise<IssuedToken> {
    const key = await this.key;
    const iat = Math.ceil(this.now() / 1000);
    const exp = iat + lifetimeSeconds;
    const jti = randomUUID();
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: key.kid })
      .setIssuer(this.issuer)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(key.privateKey);
    return { token, jti, iat, exp };
  }

  /** The claims of a token this issuer signed with its current key and that has not expired; otherwise undefined. */
  async verify(token: string): Promise<JWTPayload | undefined> {
    const key = await this.key;
    try {
      const now = this.now();
      const { payload } = await jwtVerify(token, key.publicKey, {
        issuer: this.issuer,
        algorithms: ['RS256'],
        currentDate: new Date(now),
      });
      // jose compares whole seconds; a fractional lifetime (short tests) needs the millisecond.
      if (typeof payload.exp !== 'number' || payload.exp * 1000 <= now) return undefined;
      return payload;
    } catch {
      return undefined;
    }
  }

  /** Replaces the key pair: every token issued so far stops verifying. */
  rotate(): void {
    this.key = newSigningKey();
  }

  /** Resolves when no key generation is under way. */
  async settle(): Promise<void> {
    // Only waits: a failed generation is reported to whoever asked for the key.
    await this.key.catch(() => undefined);
  }
}
