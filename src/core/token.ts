/** What a platform hands back when a credential is exchanged for access. */
export interface Token {
  /** "bearer" for OAuth-style access tokens, "dpop" for those bound to a key (RFC 9449), "session" for cookie sessions (a login). */
  type: 'bearer' | 'dpop' | 'session';
  /** The token or session id itself: a secret. */
  value: string;
  /** When the local clock obtained it, epoch milliseconds. */
  obtainedAt: number;
  /** When it stops working, epoch milliseconds, by the local clock. */
  expiresAt: number;
  /** Headers an API request needs, e.g. `authorization`. */
  headers: Record<string, string>;
  /** For a token bound to a key: the proof each request needs besides `headers`. */
  proof?: RequestProof;
}

/** Proof of possession of a token's key, made per request (a DPoP proof names the method and URL). */
export interface RequestProof {
  /** The header that carries the proof. */
  readonly header: string;
  /** A proof for one send of a request, as it goes (each redirect hop and retry gets its own). */
  make(method: string, url: URL): Promise<MadeProof>;
}

export interface MadeProof {
  /** The header's value. */
  value: string;
  /** True when the answer refused this proof only for a server nonce it now gave: the request is sent once more. */
  refusedForNonce(response: import('./http/index.js').HttpResponse): boolean;
}

/**
 * A platform's way of turning a credential into a token. Implemented once per
 * platform in src/platforms/; the engine and the HTTP layer know nothing else
 * about the platform.
 */
export interface TokenProvider {
  /** The platform's base URL: relative API URLs resolve against it, and auth goes nowhere else. */
  readonly baseUrl: string;
  fetchToken(http: import('./http/index.js').HttpClient): Promise<Token>;
  /** Releases what the provider holds (a lock file); called when its config node stops. */
  close?(): Promise<void>;
  /**
   * True for an API's 401 that does not mean the token was refused (a
   * platform that answers a missing permission with 401 and an error body):
   * that 401 is the answer, as any other status, with no new token and no
   * retry. Absent or false: a lost token, as usual.
   */
  refusesPermission?(response: import('./http/index.js').HttpResponse): boolean;
}
