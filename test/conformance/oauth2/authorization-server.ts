import { createHash, generateKeyPairSync, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { once } from 'node:events';
import path from 'node:path';
import { calculateJwkThumbprint, createRemoteJWKSet, customFetch, EmbeddedJWK, jwtVerify } from 'jose';
import { Agent, fetch as undiciFetch, request } from 'undici';

/**
 * panva's oidc-provider (OpenID Certified; a devDependency), started in this
 * process on a free loopback port, with one client per client
 * authentication, and a resource server that accepts a bearer token only
 * when oidc-provider's introspection (RFC 7662) says it is active, or, for a
 * JWT access token (issued for a resource indicator, RFC 8707), when its
 * signature verifies with the provider's JWKS and its `aud` is that
 * resource (RFC 9068 4). A DPoP-bound token (RFC 9449) is taken only with
 * the `DPoP` scheme and a proof the resource server checks as RFC 9449 7.1
 * and 4.3 say (signature by the key the token's `cnf.jkt` names, htm, htu,
 * ath, iat, a jti not seen before, and its nonce when it demands one). A front
 * server before the provider counts what reaches it and can serve the
 * metadata at RFC 8414's path-inserted address, or not.
 */

export const FIXTURES = path.join(__dirname, '..', '..', '..', '..', 'test', 'fixtures', 'tls');
export const fixture = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');

export interface ConformanceClient {
  clientId: string;
  clientSecret?: string;
  /** PEM (PKCS#8) of the client's private key, for private_key_jwt. */
  privateKey?: string;
}

export interface AuthorizationServerOptions {
  /** The issuer's path, e.g. "/tenant-a"; '' for the origin itself. */
  mountPath?: string;
  /**
   * Serve the metadata also at RFC 8414 3.1's path-inserted address,
   * `/.well-known/oauth-authorization-server<path>`: oidc-provider appends
   * both well-known names to its issuer (lib/helpers/initialize_app.js), which
   * for an issuer with a path is only OpenID Connect Discovery's form.
   */
  rfc8414?: boolean;
  /** https with client certificates requested (for RFC 8705 mutual TLS), else http. */
  tls?: boolean;
  /**
   * The `code` client (authorization code + refresh token, PKCE required,
   * refresh tokens rotated) with this redirect URI, and oidc-provider's own
   * login and consent pages (devInteractions): any login, any password.
   */
  loginRedirectUri?: string;
  /** The `code` client's access tokens are DPoP-bound (dpop_bound_access_tokens). */
  codeDpop?: boolean;
  /** Access tokens of the `code` clients live this long (seconds; oidc-provider's default is an hour). */
  accessTokenTtl?: number;
  /** Every token request waits this long before oidc-provider takes it (a slow server: concurrent refreshes overlap). */
  tokenDelayMs?: number;
}

/** What oidc-provider saw of one client assertion, from its assertJwtClientAuthClaimsAndHeader hook. */
export interface SeenAssertion {
  clientId: string;
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

export interface AuthorizationServer {
  issuer: string;
  /** The resource server's base URL (https with `tls`): GET <api>/items needs an active token, over its certificate when bound. */
  apiUrl: string;
  /**
   * The resource server's identifier (RFC 8707), `<apiUrl>/`: a token request naming it gets a JWT access
   * token with this `aud` and the scope `read`, which the resource server takes. The provider knows every
   * resource under it (other audiences, which the resource server refuses) and no other (`invalid_target`).
   */
  resource: string;
  /** `code` rotates refresh tokens with reuse detection; `codeReuse` (with `loginRedirectUri` too) keeps one refresh token, as a server that allows reuse. */
  clients: Record<
    'basic' | 'post' | 'jwt' | 'pkjwt' | 'pkjwtEc' | 'pkjwtCert' | 'tls' | 'selfSigned' | 'noGrant' | 'code' | 'codeReuse' | 'dpop',
    ConformanceClient
  >;
  /** Grants of one type oidc-provider granted, per client id (`refresh_token`, `authorization_code`). */
  grantedOf(clientId: string, grantType: string): number;
  /** Every refresh token oidc-provider issued, oldest first. */
  refreshTokens: string[];
  /** Every access token oidc-provider issued with a refresh token grant, oldest first. */
  refreshedAccessTokens: string[];
  /** How often each refresh token was presented to the token endpoint, granted or refused. */
  refreshTokenUses: Map<string, number>;
  /**
   * The answers to the next `count` refresh token grants are lost: oidc-provider
   * grants (and rotates) as usual, then the connection is destroyed before a byte of the answer.
   */
  loseRefreshAnswers(count: number): void;
  /** Grants oidc-provider revoked (on a refresh token's reuse, say). */
  revokedGrants: number;
  /** Runs before the resource server answers an accepted call, with the token used (for checks at the moment of use). */
  onAccepted?: ((accessToken: string) => Promise<void>) | undefined;
  /** Token requests oidc-provider granted, per client id. */
  granted(clientId: string): number;
  /** Token requests it refused, per client id (or '' when it knew no client). */
  refused(clientId: string): number;
  /** Requests that reached the front server, per method and path (`GET /.well-known/...`). */
  hits(what: string): number;
  /** Every assertion oidc-provider accepted the signature and claims of, oldest first. */
  assertions: SeenAssertion[];
  /**
   * Requests the resource server accepted (`bound`: with a certificate-bound token over its certificate; `jwt`: with a JWT
   * access token it verified itself), and refused with 401.
   */
  api: { accepted: number; refused: number; bound: number; jwt: number; dpop: number; nonceChallenges: number; proofs: Record<string, unknown>[] };
  /** oidc-provider's token endpoint demands a DPoP nonce (RFC 9449 8) from now on, or not. */
  requireTokenNonce(on: boolean): void;
  /** The resource server demands this DPoP nonce (RFC 9449 9) from now on; undefined: none. */
  setApiNonce(nonce: string | undefined): void;
  /** The next `count` accepted API calls are answered 429 (Retry-After: 0) instead, after their proof was checked and its jti recorded. */
  rateLimitApi(count: number): void;
  /** The next `count` metadata requests are answered 503 (a server briefly down). */
  failMetadata(count: number): void;
  /** Access tokens oidc-provider issues from now on live this long. */
  setTokenTtl(seconds: number): void;
  /** Revokes an access token at the provider (it then introspects as inactive). */
  revoke(accessToken: string): Promise<void>;
  stop(): Promise<void>;
}

const SECRET = (name: string) => `conformance-${name}-secret-${'x'.repeat(24)}-${process.pid}`;
const pem = (key: KeyObject) => key.export({ format: 'pem', type: 'pkcs8' }).toString();

export async function startAuthorizationServer(options: AuthorizationServerOptions = {}): Promise<AuthorizationServer> {
  const oidc = await import('oidc-provider');
  const { default: Provider } = oidc;
  // Exported by the module, not named in its typings.
  const { InvalidTarget } = (oidc as unknown as { errors: { InvalidTarget: new () => Error } }).errors;
  const mountPath = options.mountPath ?? '';
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const clientCert = new X509Certificate(fixture('oauth2-client.pem'));
  const selfSigned = new X509Certificate(fixture('oauth2-self-signed.pem'));
  const clients: AuthorizationServer['clients'] = {
    basic: { clientId: 'cc-basic', clientSecret: SECRET('basic') },
    post: { clientId: 'cc-post', clientSecret: SECRET('post') },
    jwt: { clientId: 'cc-jwt', clientSecret: SECRET('jwt') },
    pkjwt: { clientId: 'cc-pkjwt', privateKey: pem(rsa.privateKey) },
    pkjwtEc: { clientId: 'cc-pkjwt-ec', privateKey: pem(ec.privateKey) },
    pkjwtCert: { clientId: 'cc-pkjwt-cert', privateKey: `${fixture('oauth2-client.key')}${fixture('oauth2-client.pem')}` },
    tls: { clientId: 'cc-tls' },
    selfSigned: { clientId: 'cc-self-signed' },
    noGrant: { clientId: 'cc-no-grant', clientSecret: SECRET('no-grant') },
    code: { clientId: 'code-pkce', clientSecret: SECRET('code') },
    dpop: { clientId: 'cc-dpop', clientSecret: SECRET('dpop') },
    codeReuse: { clientId: 'code-pkce-reuse', clientSecret: SECRET('code-reuse') },
  };
  const rs = { clientId: 'resource-server', clientSecret: SECRET('rs') };
  const cc = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'read' };
  const jwk = (key: KeyObject, kid?: string, cert?: X509Certificate) => ({
    ...key.export({ format: 'jwk' }),
    ...(kid ? { kid } : {}),
    ...(cert ? { x5c: [cert.raw.toString('base64')] } : {}),
  });
  let ttl = 300;
  let tokenNonce = false;
  let apiNonce: string | undefined;
  let rateLimited = 0;
  let lostRefreshAnswers = 0;
  let metadataFailures = 0;
  const assertions: SeenAssertion[] = [];

  // The front server's address is the issuer's, so it listens first; the provider comes with the first request.
  let handle: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.writeHead(503).end();
  const counts = new Map<string, number>();
  // Not the helpers' servers: they read the body, which oidc-provider must read itself.
  const tlsOptions = {
    key: fixture('oauth2-server.key'),
    cert: fixture('oauth2-server.pem'),
    ca: fixture('oauth2-ca.pem'),
    requestCert: true,
    rejectUnauthorized: false,
  };
  const front = await listen(options.tls ? https.createServer(tlsOptions, (req, res) => handle(req, res)) : http.createServer((req, res) => handle(req, res)));
  const issuer = `${options.tls ? 'https' : 'http'}://127.0.0.1:${front.port}${mountPath}`;
  // The resource server listens before the provider is made: its address is the resource indicator the provider knows.
  let serve: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> = async (_req, res) => void res.writeHead(503).end();
  const resource = await listen(
    options.tls ? https.createServer(tlsOptions, (req, res) => void serve(req, res)) : http.createServer((req, res) => void serve(req, res)),
  );
  const apiUrl = `${options.tls ? 'https' : 'http'}://127.0.0.1:${resource.port}`;
  const resourceIndicator = `${apiUrl}/`;

  const provider = new Provider(issuer, {
    clients: [
      { ...cc, client_id: clients.basic.clientId, client_secret: clients.basic.clientSecret, token_endpoint_auth_method: 'client_secret_basic' },
      { ...cc, client_id: clients.post.clientId, client_secret: clients.post.clientSecret, token_endpoint_auth_method: 'client_secret_post' },
      { ...cc, client_id: clients.jwt.clientId, client_secret: clients.jwt.clientSecret, token_endpoint_auth_method: 'client_secret_jwt' },
      { ...cc, client_id: clients.pkjwt.clientId, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk(rsa.publicKey, 'rsa-1')] } },
      { ...cc, client_id: clients.pkjwtEc.clientId, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk(ec.publicKey, 'ec-1')] } },
      {
        ...cc,
        client_id: clients.pkjwtCert.clientId,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [jwk(clientCert.publicKey, undefined, clientCert)] },
      },
      {
        ...cc,
        client_id: clients.tls.clientId,
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: clientCert.subject,
        tls_client_certificate_bound_access_tokens: options.tls === true,
      },
      {
        ...cc,
        client_id: clients.selfSigned.clientId,
        token_endpoint_auth_method: 'self_signed_tls_client_auth',
        jwks: { keys: [jwk(selfSigned.publicKey, undefined, selfSigned)] },
        tls_client_certificate_bound_access_tokens: options.tls === true,
      },
      {
        client_id: clients.noGrant.clientId,
        client_secret: clients.noGrant.clientSecret,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: ['https://client.example/cb'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        ...cc,
        client_id: clients.dpop.clientId,
        client_secret: clients.dpop.clientSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        dpop_bound_access_tokens: true,
      },
      { client_id: rs.clientId, client_secret: rs.clientSecret, grant_types: [], response_types: [], redirect_uris: [] },
      ...(options.loginRedirectUri
        ? [
            ...[clients.code, clients.codeReuse].map((client) => ({
              client_id: client.clientId,
              client_secret: client.clientSecret,
              grant_types: ['authorization_code', 'refresh_token'],
              response_types: ['code'],
              redirect_uris: [options.loginRedirectUri!],
              token_endpoint_auth_method: 'client_secret_basic',
              dpop_bound_access_tokens: options.codeDpop === true,
            })),
          ]
        : []),
    ],
    // PKCE for every client (not only public ones), S256 the only method oidc-provider 9 knows.
    pkce: { required: () => true },
    // Rotation with reuse detection, as RFC 9700 4.14.2 asks of public clients; codeReuse: none (the same token until it expires).
    rotateRefreshToken: (ctx: { oidc: { client?: { clientId: string } } }) => ctx.oidc.client?.clientId !== clients.codeReuse.clientId,
    // The name in the ID token itself, as Entra ID puts it there (not only at the userinfo endpoint).
    conformIdTokenClaims: false,
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub, name: `User ${sub}` }) }),
    claims: { openid: ['sub'], profile: ['name'] },
    // `write` is known but no client may have it; a scope the provider does not know is dropped silently.
    scopes: ['read', 'write', 'openid', 'offline_access', 'profile'],
    clientAuthMethods: [
      'client_secret_basic',
      'client_secret_post',
      'client_secret_jwt',
      'private_key_jwt',
      ...(options.tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
    ],
    features: {
      devInteractions: { enabled: options.loginRedirectUri !== undefined },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      // RFC 8707: resources on the resource server's origin get JWT access tokens (RFC 9068) for their own audience; any other is invalid_target.
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (!indicator.startsWith(resourceIndicator)) throw new InvalidTarget();
          return { scope: 'read', audience: indicator, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
      revocation: { enabled: true },
      // On by default in oidc-provider 9; nonces only while a test asks for them.
      dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => tokenNonce },
      mTLS: {
        enabled: options.tls === true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        certificateBoundAccessTokens: true,
        getCertificate: (ctx: { socket: TLSSocket }) => {
          const peer = ctx.socket.getPeerCertificate?.(true);
          return peer?.raw ? new X509Certificate(peer.raw).toString() : undefined;
        },
        certificateAuthorized: (ctx: { socket: TLSSocket }) => ctx.socket.authorized,
        certificateSubjectMatches: (ctx: { socket: TLSSocket }, property: string, expected: string) =>
          property === 'tls_client_auth_subject_dn' && ctx.socket.getPeerX509Certificate?.()?.subject === expected,
      },
    },
    ttl: {
      ClientCredentials: () => ttl,
      ...(options.accessTokenTtl !== undefined ? { AccessToken: () => options.accessTokenTtl! } : {}),
    },
    assertJwtClientAuthClaimsAndHeader: async (
      _ctx: unknown,
      payload: Record<string, unknown>,
      header: Record<string, unknown>,
      client: { clientId: string },
    ) => {
      assertions.push({ clientId: client.clientId, header, payload });
    },
  });
  const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  const granted = new Map<string, number>();
  const refused = new Map<string, number>();
  const byType = new Map<string, number>();
  const refreshTokens: string[] = [];
  const refreshedAccessTokens: string[] = [];
  const refreshTokenUses = new Map<string, number>();
  const countUse = (params: { grant_type?: string; refresh_token?: string } | undefined) => {
    if (params?.grant_type === 'refresh_token' && typeof params.refresh_token === 'string') bump(refreshTokenUses, params.refresh_token);
  };
  let revokedGrants = 0;
  provider.on('grant.revoked', () => {
    revokedGrants += 1;
  });
  provider.on(
    'grant.success',
    (ctx: {
      oidc: { client?: { clientId: string }; params?: { grant_type?: string; refresh_token?: string } };
      body?: { refresh_token?: string; access_token?: string };
      req: http.IncomingMessage;
    }) => {
      countUse(ctx.oidc.params);
      bump(granted, ctx.oidc.client?.clientId ?? '');
      const type = ctx.oidc.params?.grant_type ?? '';
      bump(byType, `${ctx.oidc.client?.clientId ?? ''} ${type}`);
      if (ctx.body?.refresh_token) refreshTokens.push(ctx.body.refresh_token);
      if (type === 'refresh_token' && ctx.body?.access_token) refreshedAccessTokens.push(ctx.body.access_token);
      // Granted and rotated, and the answer never leaves: as a connection lost after the server's work.
      if (type === 'refresh_token' && lostRefreshAnswers > 0) {
        lostRefreshAnswers -= 1;
        ctx.req.socket.destroy();
      }
    },
  );
  provider.on('grant.error', (ctx: { oidc: { client?: { clientId: string }; params?: { grant_type?: string; refresh_token?: string } } }) => {
    countUse(ctx.oidc.params);
    bump(refused, ctx.oidc.client?.clientId ?? '');
  });

  const callback = provider.callback();
  const wellKnown = `/.well-known/oauth-authorization-server${mountPath}`;
  handle = (req, res) => {
    const original = req.url ?? '/';
    const pathname = original.split('?')[0]!;
    bump(counts, `${req.method} ${pathname}`);
    if (pathname.includes('/.well-known/') && metadataFailures > 0) {
      metadataFailures -= 1;
      res.writeHead(503).end();
      return;
    }
    let local: string | undefined;
    if (options.rfc8414 && pathname === wellKnown) local = '/.well-known/openid-configuration';
    else if (mountPath === '') local = original;
    else if (pathname === mountPath || pathname.startsWith(`${mountPath}/`)) local = original.slice(mountPath.length) || '/';
    if (local === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
      return;
    }
    // oidc-provider builds its URLs from the part of originalUrl before url: the mount path.
    (req as http.IncomingMessage & { originalUrl: string }).originalUrl = `${mountPath}${local}`;
    req.url = local;
    if (options.tokenDelayMs && req.method === 'POST' && pathname === `${mountPath}/token`) setTimeout(() => callback(req, res), options.tokenDelayMs);
    else callback(req, res);
  };

  const dispatcher = new Agent({ connect: { ca: fixture('oauth2-ca.pem') } });
  const introspectionUrl = `${issuer}/token/introspection`;
  const api: AuthorizationServer['api'] = { accepted: 0, refused: 0, bound: 0, jwt: 0, dpop: 0, nonceChallenges: 0, proofs: [] };
  const seenJtis = new Set<string>();
  /**
   * The DPoP proof of an API request for a token bound to `jkt` (RFC 9449 7.1, 4.3): 'ok', 'nonce' when it
   * lacks the nonce the server demands, else what is wrong.
   */
  const checkProof = async (req: http.IncomingMessage, token: string, jkt: string): Promise<string> => {
    const proof = req.headers.dpop;
    if (typeof proof !== 'string') return 'no proof';
    try {
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256', 'PS256', 'RS256'] });
      api.proofs.push(payload as Record<string, unknown>);
      if (payload.htm !== req.method) return 'htm';
      if (payload.htu !== `${apiUrl}${(req.url ?? '/').split('?')[0]}`) return 'htu';
      if (payload.ath !== createHash('sha256').update(token).digest('base64url')) return 'ath';
      if (typeof payload.iat !== 'number' || Math.abs(Date.now() / 1000 - payload.iat) > 60) return 'iat';
      if (typeof payload.jti !== 'string' || seenJtis.has(payload.jti)) return 'jti replayed';
      seenJtis.add(payload.jti);
      if ((await calculateJwkThumbprint(protectedHeader.jwk!)) !== jkt) return 'another key';
      if (apiNonce !== undefined && payload.nonce !== apiNonce) return 'nonce';
      return 'ok';
    } catch (err) {
      return `invalid: ${(err as Error).message}`;
    }
  };
  // The JWKS over the same dispatcher (the conformance CA) as the introspection.
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`), {
    [customFetch]: (url: string, init: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher }) as unknown as Promise<Response>,
  });
  /** A JWT access token's claims, checked as RFC 9068 4 says: signature, issuer, audience (the resource), type at+jwt. */
  const verifiedJwt = async (token: string): Promise<Record<string, unknown>> => {
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience: resourceIndicator, typ: 'at+jwt' });
      api.jwt += 1;
      return { ...payload, active: true };
    } catch {
      return { active: false };
    }
  };
  // Over https (with tls), the resource server asks for a client certificate and holds a
  // certificate-bound token (RFC 8705 3) to it: the token's cnf must name the certificate presented.
  serve = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    // A moved resource, as an API may answer before it looks at the token: the client follows to /items.
    if (req.url === '/moved') {
      res.writeHead(301, { location: '/items' }).end();
      return;
    }
    const [, scheme, token] = /^(Bearer|DPoP) (\S+)$/i.exec(req.headers.authorization ?? '') ?? [];
    let active: Record<string, unknown> = { active: false };
    if (token?.split('.').length === 3) active = await verifiedJwt(token);
    else if (token) {
      const answer = await request(introspectionUrl, {
        method: 'POST',
        dispatcher,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${rs.clientId}:${rs.clientSecret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      });
      active = (await answer.body.json()) as Record<string, unknown>;
    }
    const bound = (active.cnf as { 'x5t#S256'?: string } | undefined)?.['x5t#S256'];
    const peer = (req.socket as TLSSocket).getPeerX509Certificate?.();
    const presented = peer ? createHash('sha256').update(peer.raw).digest('base64url') : undefined;
    // A DPoP-bound token goes only with its scheme and a good proof; a bearer token never with the DPoP scheme (RFC 9449 7.1).
    const jkt = (active.cnf as { jkt?: string } | undefined)?.jkt;
    const dpop = scheme?.toLowerCase() === 'dpop';
    const proof = jkt !== undefined && dpop && token ? await checkProof(req, token, jkt) : 'none';
    if (proof === 'nonce') {
      api.nonceChallenges += 1;
      res
        .writeHead(401, { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': apiNonce ?? '', 'content-type': 'application/json' })
        .end('{"error":"use_dpop_nonce"}');
      return;
    }
    if (active.active !== true || (bound !== undefined && bound !== presented) || (jkt !== undefined) !== dpop || (dpop && proof !== 'ok')) {
      api.refused += 1;
      const challenge = dpop ? `DPoP error="${proof === 'none' ? 'invalid_token' : 'invalid_dpop_proof'}"` : 'Bearer error="invalid_token"';
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end(`{"error":"invalid_token","proof":"${proof}"}`);
      return;
    }
    if (rateLimited > 0) {
      rateLimited -= 1;
      res.writeHead(429, { 'retry-after': '0', 'content-type': 'application/json' }).end('{"error":"slow_down"}');
      return;
    }
    if (dpop) api.dpop += 1;
    if (server.onAccepted && token) await server.onAccepted(token);
    api.accepted += 1;
    if (bound !== undefined) api.bound += 1;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ items: [1, 2, 3], client_id: active.client_id, scope: active.scope, ...(active.aud ? { aud: active.aud } : {}) }));
  };

  const server: AuthorizationServer = {
    issuer,
    apiUrl,
    resource: resourceIndicator,
    clients,
    grantedOf: (clientId, grantType) => byType.get(`${clientId} ${grantType}`) ?? 0,
    refreshTokens,
    refreshedAccessTokens,
    refreshTokenUses,
    loseRefreshAnswers: (count) => {
      lostRefreshAnswers = count;
    },
    get revokedGrants() {
      return revokedGrants;
    },
    granted: (clientId) => granted.get(clientId) ?? 0,
    refused: (clientId) => refused.get(clientId) ?? 0,
    hits: (what) => counts.get(what) ?? 0,
    assertions,
    api,
    failMetadata: (count) => {
      metadataFailures = count;
    },
    setTokenTtl: (seconds) => {
      ttl = seconds;
    },
    requireTokenNonce: (on) => {
      tokenNonce = on;
    },
    setApiNonce: (nonce) => {
      apiNonce = nonce;
    },
    rateLimitApi: (count) => {
      rateLimited = count;
    },
    async revoke(accessToken) {
      const token = await provider.ClientCredentials.find(accessToken);
      if (!token) throw new Error('oidc-provider knows no such access token');
      await token.destroy();
    },
    async stop() {
      await resource.stop();
      await front.stop();
      await dispatcher.close();
    },
  };
  return server;
}

/** Listens on a free loopback port; stop() ends every connection it accepted. */
async function listen(server: http.Server): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on(server instanceof https.Server ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
