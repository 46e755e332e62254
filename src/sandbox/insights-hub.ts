// Insights Hub app credentials (docs/protocols.md, Insights Hub app credentials):
// the Technical Token Manager, the public keys of its tokens (`/token_keys`,
// which the official SDK reads on the tenant's piam host, derived from the
// gateway URL: against the sandbox that is the sandbox's own origin), and one
// protected gateway API (Identity Management users).

import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { TokenIssuer } from './token-issuer.js';
import { bearerToken, header, jsonObjectBody, jsonReply, mediaType, type Platform, type Reply, type SandboxContext, type SandboxRequest } from './http-kit.js';

const APP_FIELDS = ['appName', 'appVersion', 'hostTenant', 'userTenant'] as const;
/** The scope app tokens carry for Agent Management (our choice of name; the app side of agents and the data source configuration need it). */
export const AGENT_MANAGEMENT_SCOPE = 'mdsp:core:am.admin';

// Error bodies of the gateway are not in docs/protocols.md; this is the shape the
// Insights Hub APIs use for errors: {errors: [{logref, message}]}.
function gatewayError(status: number, message: string): Reply {
  return jsonReply(status, { errors: [{ logref: randomUUID(), message }] });
}

/** `Basic|Bearer base64(id:secret)` → [id, secret]; both schemes, as the seed shows both. */
function parseSpaceAuthKey(value: string | undefined): [string, string] | undefined {
  const match = /^(?:Basic|Bearer)\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  return separator > 0 ? [decoded.slice(0, separator), decoded.slice(separator + 1)] : undefined;
}

export interface InsightsHubPlatform extends Platform {
  /** The claims of a valid app token this Technical Token Manager issued, else undefined (Agent Management's app side uses it). */
  verifyToken(token: string): Promise<JWTPayload | undefined>;
  /** Signs a token with this issuer's current key (the one `/token_keys` shows): the service credentials' piam issues them. */
  issueToken(claims: JWTPayload, lifetimeSeconds: number): Promise<{ token: string; jti: string }>;
}

export async function createInsightsHub(context: SandboxContext): Promise<InsightsHubPlatform> {
  const issuer = await TokenIssuer.create(`${context.url}/oauth/token`);
  const app = context.demo.insightsHubApp;

  async function issueToken(request: SandboxRequest): Promise<Reply> {
    if (mediaType(request) !== 'application/json') return gatewayError(400, 'Content-Type must be application/json');
    const body = jsonObjectBody(request);
    if (!body) return gatewayError(400, 'The request body must be a JSON object');
    if (body.grant_type !== undefined && body.grant_type !== 'client_credentials') {
      return gatewayError(400, 'grant_type must be client_credentials');
    }
    const missing = APP_FIELDS.filter((field) => typeof body[field] !== 'string' || body[field] === '');
    if (missing.length > 0) return gatewayError(400, `Missing or empty: ${missing.join(', ')}`);

    const credentials = parseSpaceAuthKey(header(request, 'x-space-auth-key'));
    if (!credentials) return gatewayError(401, 'X-SPACE-AUTH-KEY must be "Basic base64(clientId:clientSecret)"');
    const [clientId, clientSecret] = credentials;
    if (clientId !== app.clientId || clientSecret !== app.clientSecret) {
      return gatewayError(401, 'Invalid app credentials: wrong, expired or revoked');
    }
    const mismatched = APP_FIELDS.filter((field) => body[field] !== app[field]);
    if (mismatched.length > 0) return gatewayError(401, `The app credentials are not valid for this ${mismatched.join(', ')}`);

    const lifetime = context.lifetimes.insightsHubAppToken;
    const scopes = ['mdsp:core:im.Users.read', AGENT_MANAGEMENT_SCOPE, `${app.appName}.read`];
    const issued = await issuer.issue(
      {
        sub: app.clientId,
        client_id: app.clientId,
        cid: app.clientId,
        azp: app.clientId,
        grant_type: 'client_credentials',
        scope: scopes,
        aud: [app.appName],
        ten: app.userTenant,
        schemas: ['urn:siemens:mindsphere:iam:v1'],
      },
      lifetime,
    );
    return jsonReply(200, {
      access_token: issued.token,
      token_type: 'Bearer',
      expires_in: lifetime,
      scope: scopes.join(' '),
      jti: issued.jti,
      timestamp: Date.now(), // epoch milliseconds of issue
    });
  }

  async function listUsers(request: SandboxRequest): Promise<Reply> {
    const token = bearerToken(request);
    const claims = token === undefined ? undefined : await issuer.verify(token);
    if (!claims) {
      return jsonReply(
        401,
        { error: 'invalid_token', error_description: 'Missing, expired, revoked or foreign access token' },
        { 'www-authenticate': 'Bearer error="invalid_token"' },
      );
    }
    const users = [
      { id: 'a0b1c2d3-0000-4000-8000-000000000001', userName: 'operator@sandbox.example', active: true },
      { id: 'a0b1c2d3-0000-4000-8000-000000000002', userName: 'engineer@sandbox.example', active: true },
    ].map((user) => ({
      ...user,
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      emails: [{ value: user.userName }],
      meta: { resourceType: 'User' },
    }));
    // SCIM list response, with the lower-case `resources` the platform uses.
    return jsonReply(200, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'],
      totalResults: users.length,
      itemsPerPage: users.length,
      startIndex: 1,
      resources: users,
    });
  }

  /**
   * The token keys, UAA style: `{keys: [{kty, e, n, kid, alg, use, value}]}`,
   * `value` a PEM with its line breaks (as the SDK's fixtures in
   * test/credential-auth.spec.js show). The SDK takes the first key only.
   */
  async function tokenKeys(): Promise<Reply> {
    const { kid, publicKey } = await issuer.publicKey();
    const { kty, n, e } = publicKey.export({ format: 'jwk' });
    const value = publicKey.export({ format: 'pem', type: 'spki' }).toString().trim();
    return jsonReply(200, { keys: [{ kty, e, use: 'sig', kid, alg: 'RS256', value, n }] });
  }

  return {
    name: 'insights-hub-app',
    routes: [
      { endpoint: 'insightsHub.token', path: /^\/api\/technicaltokenmanager\/v3\/oauth\/token$/, methods: { POST: issueToken } },
      { endpoint: 'insightsHub.tokenKeys', path: /^\/token_keys$/, methods: { GET: tokenKeys } },
      { endpoint: 'insightsHub.users', path: /^\/api\/(?:identitymanagement|im)\/v3\/Users$/, methods: { GET: listUsers } },
    ],
    authenticates: async (request) => {
      const token = bearerToken(request);
      // The app's tokens only: the service credentials' share the issuer.
      return token !== undefined && (await issuer.verify(token))?.client_id === app.clientId;
    },
    verifyToken: (token) => issuer.verify(token),
    issueToken: (claims, lifetimeSeconds) => issuer.issue(claims, lifetimeSeconds),
    revoke: () => issuer.rotate(),
    settle: () => issuer.settle(),
  };
}
