// A generic OAuth 2.0 authorization server with the client credentials grant
// (RFC 6749 4.4) and an API it protects. The client authenticates in the form
// body or with HTTP Basic (each part form-encoded, RFC 6749 2.3.1), never
// both. Scopes must be among the client's; the audience, when sent, must be
// the API's. The API's `/whoami` shows what the token was issued for (client,
// how it authenticated, scope, audience, extra parameters), so tests can see
// that every setting reached the server.

import type { JWTPayload } from 'jose';
import { bearerToken, header, jsonReply, mediaType, type Handler, type Platform, type Reply, type SandboxContext, type SandboxRequest } from './http-kit.js';
import { TokenIssuer } from './token-issuer.js';

export const OAUTH2_SCOPES = ['read', 'write'];
const STANDARD = new Set(['grant_type', 'client_id', 'client_secret', 'scope', 'audience']);

const oauthError = (status: number, error: string, description: string, headers?: Record<string, string>): Reply =>
  jsonReply(status, { error, error_description: description }, headers);

/** The demo client (the sandbox knows no other) and the audience of its API. */
export function oauth2Demo() {
  return { clientId: 'sandbox-oauth2-client', clientSecret: 'o2secret-Sandbox-Kq8Zr3Tm6Wn1', audience: 'https://api.sandbox.example' };
}

export async function createOAuth2(context: SandboxContext): Promise<Platform> {
  const issuer = await TokenIssuer.create(`${context.url}/oauth2`);
  const demo = context.demo.oauth2;

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

  async function issueToken(request: SandboxRequest): Promise<Reply> {
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
    if (form.get('grant_type') !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials');
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const unknown = scopes.filter((scope) => !OAUTH2_SCOPES.includes(scope));
    if (unknown.length > 0) return oauthError(400, 'invalid_scope', `unknown scope: ${unknown.join(' ')}`);
    const audience = form.get('audience');
    if (audience !== null && audience !== demo.audience) return oauthError(400, 'invalid_target', `unknown audience: ${audience}`);
    const params = Object.fromEntries([...form].filter(([name]) => !STANDARD.has(name)));
    const lifetime = context.lifetimes.oauth2Token;
    const claims = { sub: found.id, client_auth: found.method, scope: scopes.join(' '), aud: audience ?? demo.audience, params };
    const issued = await issuer.issue(claims, lifetime);
    return jsonReply(200, { access_token: issued.token, token_type: 'Bearer', expires_in: lifetime, scope: scopes.join(' ') });
  }

  function withToken(handler: (claims: JWTPayload) => Reply): Handler {
    return async (request) => {
      const token = bearerToken(request);
      const claims = token === undefined ? undefined : await issuer.verify(token);
      return claims
        ? handler(claims)
        : oauthError(401, 'invalid_token', 'missing, expired or revoked token', { 'www-authenticate': 'Bearer error="invalid_token"' });
    };
  }

  const whoami = withToken((claims) =>
    jsonReply(200, { client_id: claims.sub, client_auth: claims.client_auth, scope: claims.scope, audience: claims.aud, params: claims.params }),
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
      { endpoint: 'oauth2.token', path: /^\/oauth2\/token$/, methods: { POST: issueToken } },
      { endpoint: 'oauth2.whoami', path: /^\/oauth2\/api\/whoami$/, methods: { GET: whoami } },
      { endpoint: 'oauth2.items', path: /^\/oauth2\/api\/items$/, methods: { GET: items } },
    ],
    async authenticates(request) {
      const token = bearerToken(request);
      return token !== undefined && (await issuer.verify(token)) !== undefined;
    },
    revoke: () => issuer.rotate(),
    settle: () => issuer.settle(),
  };
}
