// A generic OAuth 2.0 authorization server and an API it protects. Grants:
// client credentials (RFC 6749 4.4), and a user's login with the
// authorization code and refresh token grants (./oauth2-login.ts). Its
// metadata (RFC 8414) is at `/.well-known/oauth-authorization-server/oauth2`
// for the issuer `<sandbox>/oauth2`. The client authenticates in the form
// body or with HTTP Basic (each part form-encoded, RFC 6749 2.3.1), never
// both. Scopes must be among the client's; the audience, when sent, must be
// the API's. The API's `/whoami` shows what the token was issued for (client,
// how it authenticated, scope, audience, extra parameters, the user of a
// login), so tests can see that every setting reached the server.

import type { JWTPayload } from 'jose';
import { bearerToken, header, jsonReply, mediaType, type Handler, type Platform, type Reply, type SandboxContext, type SandboxRequest } from './http-kit.js';
import { createLogin, type Grant, LOGIN_SCOPES } from './oauth2-login.js';
import { TokenIssuer } from './token-issuer.js';

export const OAUTH2_SCOPES = ['read', 'write'];
const STANDARD = new Set(['grant_type', 'client_id', 'client_secret', 'scope', 'audience', 'code', 'redirect_uri', 'code_verifier', 'refresh_token']);

const oauthError = (status: number, error: string, description: string, headers?: Record<string, string>): Reply =>
  jsonReply(status, { error, error_description: description }, headers);

/** The demo client (the sandbox knows no other) and the audience of its API. */
export function oauth2Demo() {
  return {
    clientId: 'sandbox-oauth2-client',
    clientSecret: 'o2secret-Sandbox-Kq8Zr3Tm6Wn1',
    audience: 'https://api.sandbox.example',
    user: { sub: 'demo-operator', name: 'Demo Operator' },
  };
}

export async function createOAuth2(context: SandboxContext): Promise<Platform> {
  const issuerUrl = `${context.url}/oauth2`;
  const issuer = await TokenIssuer.create(issuerUrl);
  const demo = context.demo.oauth2;
  const login = createLogin(context);

  const metadata = () =>
    jsonReply(200, {
      issuer: issuerUrl,
      authorization_endpoint: `${issuerUrl}/authorize`,
      token_endpoint: `${issuerUrl}/token`,
      revocation_endpoint: `${issuerUrl}/revoke`,
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      grant_types_supported: ['client_credentials', 'authorization_code', 'refresh_token'],
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: LOGIN_SCOPES,
    });

  function client(request: SandboxRequest, form: URLSearchParams): { id: string; secret: string; method: 'body' | 'basic' } | Reply {
    const basic = /^Basic\s+(\S+)\s*$/i.exec(header(request, 'authorization') ?? '');
    const inBody = form.has('client_secret');
    if (basic && inBody) return oauthError(400, 'invalid_request', 'the client authenticated in more than one way');
    if (basic) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return oauthError(401, 'invalid_client', 'Client authentication failed', { 'www-authenticate': 'Basic realm="sandbox"' });
      const decode = (part: string) => new URLSearchParams(`v=${part}`).get('v') ?? '';
      return { id: decode(decoded.slice(0, colon)), secret: decode(decoded.slice(colon + 1)), method: 'basic' };
    }
    const id = form.get('client_id');
    const secret = form.get('client_secret');
    if (!id || !secret) return oauthError(401, 'invalid_client', 'Client authentication failed: no client credentials');
    return { id, secret, method: 'body' };
  }

  /** The form of a request to the token or revocation endpoint and the demo client it authenticated as, or the refusal. */
  function demoClientRequest(request: SandboxRequest): { form: URLSearchParams; found: { id: string; method: 'body' | 'basic' } } | Reply {
    if (mediaType(request) !== 'application/x-www-form-urlencoded') {
      return oauthError(400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
    }
    const form = new URLSearchParams(request.body.toString('utf8'));
    const found = client(request, form);
    if ('status' in found) return found;
    if (found.id !== demo.clientId || found.secret !== demo.clientSecret) {
      return oauthError(
        401,
        'invalid_client',
        'Client authentication failed',
        found.method === 'basic' ? { 'www-authenticate': 'Basic realm="sandbox"' } : undefined,
      );
    }
    return { form, found };
  }

  /** RFC 7009: the client revokes a login's refresh token; 200 whether or not it was valid (2.2). */
  function revokeToken(request: SandboxRequest): Reply {
    const checked = demoClientRequest(request);
    if ('status' in checked) return checked;
    const token = checked.form.get('token');
    if (!token) return oauthError(400, 'invalid_request', 'token is required');
    login.revokeToken(token, checked.found.id);
    return { status: 200, headers: { 'cache-control': 'no-store' } };
  }

  async function issueToken(request: SandboxRequest): Promise<Reply> {
    const checked = demoClientRequest(request);
    if ('status' in checked) return checked;
    const { form, found } = checked;
    const grantType = form.get('grant_type');
    if (grantType === 'authorization_code' || grantType === 'refresh_token') {
      const check = (grant: Grant) => loginRequestRefused(form, grant);
      const outcome = grantType === 'authorization_code' ? login.exchangeCode(form, found.id, check) : login.refresh(form, found.id, check);
      return outcome.ok ? loginTokens(form, found.method, outcome.grant, outcome.refreshToken, grantType) : oauthError(400, outcome.error, outcome.description);
    }
    if (grantType !== 'client_credentials') {
      return oauthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials, authorization_code or refresh_token');
    }
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const unknown = scopes.filter((scope) => !OAUTH2_SCOPES.includes(scope));
    if (unknown.length > 0) return oauthError(400, 'invalid_scope', `unknown scope: ${unknown.join(' ')}`);
    const audience = form.get('audience');
    if (audience !== null && audience !== demo.audience) return oauthError(400, 'invalid_target', `unknown audience: ${audience}`);
    const claims = { sub: found.id, client_auth: found.method, scope: scopes.join(' '), aud: audience ?? demo.audience, params: extraParams(form) };
    const lifetime = context.lifetimes.oauth2Token;
    const issued = await issuer.issue(claims, lifetime);
    return jsonReply(200, { access_token: issued.token, token_type: 'Bearer', expires_in: lifetime, scope: scopes.join(' ') });
  }

  const askedScope = (form: URLSearchParams, grant: Grant) => (form.has('scope') ? (form.get('scope') ?? '').split(' ').filter(Boolean) : grant.scope);

  /** A login's token request asking for more scope than the login granted (RFC 6749 6), or for another audience. */
  function loginRequestRefused(form: URLSearchParams, grant: Grant): { error: string; description: string } | undefined {
    const wider = askedScope(form, grant).filter((scope) => !grant.scope.includes(scope));
    if (wider.length > 0) return { error: 'invalid_scope', description: `not granted at the login: ${wider.join(' ')}` };
    const audience = form.get('audience');
    if (audience !== null && audience !== demo.audience) return { error: 'invalid_target', description: `unknown audience: ${audience}` };
    return undefined;
  }

  /**
   * The answer to a login's grant: an access token for the demo user, the
   * rotated refresh token, and after the code an ID token when the scope has
   * openid. A refresh may narrow the scope (RFC 6749 6), never widen it.
   */
  async function loginTokens(form: URLSearchParams, method: string, grant: Grant, refreshToken: string, grantType: string): Promise<Reply> {
    const scope = askedScope(form, grant).join(' ');
    const claims = { sub: grant.clientId, client_auth: method, scope, aud: demo.audience, params: extraParams(form), user: demo.user.sub };
    const lifetime = context.lifetimes.oauth2Token;
    const issued = await issuer.issue(claims, lifetime);
    const idToken =
      grantType === 'authorization_code' && grant.scope.includes('openid')
        ? { id_token: (await issuer.issue({ sub: demo.user.sub, name: demo.user.name, aud: grant.clientId }, lifetime)).token }
        : {};
    return jsonReply(
      200,
      { access_token: issued.token, token_type: 'Bearer', expires_in: lifetime, scope, refresh_token: refreshToken, ...idToken },
      { 'cache-control': 'no-store' },
    );
  }

  /** An access token of this server for its API: an ID token (same signer, another audience) is none. */
  async function accessClaims(request: SandboxRequest): Promise<JWTPayload | undefined> {
    const token = bearerToken(request);
    const claims = token === undefined ? undefined : await issuer.verify(token);
    return claims?.aud === demo.audience ? claims : undefined;
  }

  function withToken(handler: (claims: JWTPayload) => Reply): Handler {
    return async (request) => {
      const claims = await accessClaims(request);
      return claims
        ? handler(claims)
        : oauthError(401, 'invalid_token', 'missing, expired or revoked token', { 'www-authenticate': 'Bearer error="invalid_token"' });
    };
  }

  const whoami = withToken((claims) =>
    jsonReply(200, {
      client_id: claims.sub,
      client_auth: claims.client_auth,
      scope: claims.scope,
      audience: claims.aud,
      params: claims.params,
      ...(claims.user ? { user: claims.user } : {}),
    }),
  );
  const items = withToken(() =>
    jsonReply(200, {
      items: [
        { id: 'line-1', state: 'running' },
        { id: 'line-2', state: 'idle' },
      ],
    }),
  );

  return {
    name: 'oauth2',
    routes: [
      { endpoint: 'oauth2.metadata', path: /^\/\.well-known\/oauth-authorization-server\/oauth2$/, methods: { GET: metadata } },
      { endpoint: 'oauth2.authorize', path: /^\/oauth2\/authorize$/, methods: { GET: login.authorize, POST: login.decide } },
      { endpoint: 'oauth2.token', path: /^\/oauth2\/token$/, methods: { POST: issueToken } },
      { endpoint: 'oauth2.revoke', path: /^\/oauth2\/revoke$/, methods: { POST: revokeToken } },
      { endpoint: 'oauth2.whoami', path: /^\/oauth2\/api\/whoami$/, methods: { GET: whoami } },
      { endpoint: 'oauth2.items', path: /^\/oauth2\/api\/items$/, methods: { GET: items } },
    ],
    async authenticates(request) {
      return (await accessClaims(request)) !== undefined;
    },
    revoke: () => {
      issuer.rotate();
      login.revoke();
    },
    settle: () => issuer.settle(),
  };
}

/** The form's parameters beyond OAuth 2.0's own: /whoami shows them. */
function extraParams(form: URLSearchParams): Record<string, string> {
  return Object.fromEntries([...form].filter(([name]) => !STANDARD.has(name)));
}
