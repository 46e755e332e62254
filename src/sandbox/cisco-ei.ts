// Cisco IoT Operations Dashboard / Edge Intelligence (docs/protocols.md, Cisco EI): token,
// users/me, and the EI API, which needs a bearer and a tenant of that user.

import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { TokenIssuer } from './token-issuer.js';
import {
  bearerToken,
  header,
  jsonObjectBody,
  jsonReply,
  emptyReply,
  mediaType,
  type Platform,
  type Reply,
  type SandboxContext,
  type SandboxRequest,
} from './http-kit.js';

const TENANT_ADMIN_ROLE_ID = '8cc52173-9fc1-43a7-8535-b0cd0a560880';
const DEMO_USER_ID = 'c0ffee00-1e1e-4b0b-9a9a-5a5a5a5a5a5a';

// Error bodies are not documented. The token endpoint sits on a Keycloak-style
// identity service, so it answers in OAuth style; the EI API answers
// "Unauthorized", as docs/protocols.md quotes.
const unauthorized = (status: 401 | 403): Reply => jsonReply(status, { status, message: 'Unauthorized' });
const notFound = (what: string): Reply => jsonReply(404, { status: 404, message: `${what} not found` });
const badRequest = (message: string): Reply => jsonReply(400, { status: 400, message });

interface AssetType {
  id: string;
  name: string;
  [field: string]: unknown;
}

export async function createCiscoEi(context: SandboxContext): Promise<Platform> {
  const issuer = await TokenIssuer.create(`${context.url}/iam/realms/iotod`);
  const demo = context.demo.ciscoEi;
  // The refresh token is HS256, as Keycloak's are; no endpoint accepts it (none is documented).
  let refreshSecret = randomBytes(32);
  const userTenantIds = new Set(demo.tenants.map((tenant) => tenant.id));
  const assetTypesByTenant = new Map<string, Map<string, AssetType>>([...userTenantIds].map((id) => [id, new Map()]));

  async function issueToken(request: SandboxRequest): Promise<Reply> {
    if (mediaType(request) !== 'application/json') {
      return jsonReply(400, { error: 'invalid_request', error_description: 'Content-Type must be application/json' });
    }
    const body = jsonObjectBody(request);
    if (!body || typeof body.username !== 'string' || typeof body.password !== 'string') {
      return jsonReply(400, { error: 'invalid_request', error_description: 'username and password are required' });
    }
    if (body.username !== demo.username || body.password !== demo.password) {
      return jsonReply(401, { error: 'invalid_grant', error_description: 'Invalid user credentials' });
    }
    const { ciscoEiAccessToken: accessLifetime, ciscoEiRefreshToken: refreshLifetime } = context.lifetimes;
    const access = await issuer.issue(
      { sub: DEMO_USER_ID, typ: 'Bearer', azp: 'iotod', preferred_username: demo.username, email: demo.username },
      accessLifetime,
    );
    const refreshToken = await new SignJWT({ typ: 'Refresh', sub: DEMO_USER_ID, azp: 'iotod' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(issuer.issuer)
      .setIssuedAt(access.iat)
      .setExpirationTime(access.iat + refreshLifetime)
      .setJti(randomUUID())
      .sign(refreshSecret);
    return jsonReply(200, {
      access_token: access.token,
      refresh_token: refreshToken,
      token_type: 'bearer',
      expires_in: accessLifetime,
      refresh_expires_in: refreshLifetime,
    });
  }

  async function authenticated(request: SandboxRequest): Promise<boolean> {
    const token = bearerToken(request);
    return token !== undefined && (await issuer.verify(token)) !== undefined;
  }

  async function usersMe(request: SandboxRequest): Promise<Reply> {
    if (!(await authenticated(request))) return unauthorized(401);
    return jsonReply(200, {
      roles: demo.tenants.map((tenant) => ({
        tenant_name: tenant.name,
        tenant_id: tenant.id,
        role_name: 'tenant-admin',
        role_id: TENANT_ADMIN_ROLE_ID,
      })),
    });
  }

  /**
   * Wraps an EI API handler: a valid bearer (else 401), and an `x-tenant-id`
   * of one of the user's tenants (else 403, so that a client does not take a
   * missing tenant for an expired token and fetch tokens in vain).
   */
  function inTenant(handler: (request: SandboxRequest, tenantId: string, params: string[]) => Reply) {
    return async (request: SandboxRequest, params: string[]): Promise<Reply> => {
      if (!(await authenticated(request))) return unauthorized(401);
      const tenantId = header(request, 'x-tenant-id');
      if (tenantId === undefined || !userTenantIds.has(tenantId)) return unauthorized(403);
      return handler(request, tenantId, params);
    };
  }

  const listAgents = inTenant((_request, tenantId) => {
    // Two fixed agents per tenant; docs/protocols.md does not give the list's shape, a JSON array is assumed.
    const suffix = tenantId.slice(-2);
    return jsonReply(200, [
      { id: `agent-${suffix}-1`, name: `Edge router ${suffix}-1`, status: 'ONLINE', tenantId },
      { id: `agent-${suffix}-2`, name: `Edge router ${suffix}-2`, status: 'OFFLINE', tenantId },
    ]);
  });

  const assetTypeFields = (body: Record<string, unknown> | undefined): Record<string, unknown> | string => {
    if (!body) return 'The request body must be a JSON object';
    if (typeof body.name !== 'string' || body.name === '') return 'name is required';
    return body;
  };

  const listAssetTypes = inTenant((_request, tenantId) => jsonReply(200, [...assetTypesOf(tenantId).values()]));

  const createAssetType = inTenant((request, tenantId) => {
    const fields = assetTypeFields(jsonObjectBody(request));
    if (typeof fields === 'string') return badRequest(fields);
    const assetType = { ...fields, id: randomUUID() } as AssetType;
    assetTypesOf(tenantId).set(assetType.id, assetType);
    return jsonReply(201, assetType);
  });

  const getAssetType = inTenant((_request, tenantId, [id]) => {
    const assetType = assetTypesOf(tenantId).get(id);
    return assetType ? jsonReply(200, assetType) : notFound('Asset type');
  });

  const replaceAssetType = inTenant((request, tenantId, [id]) => {
    const assetTypes = assetTypesOf(tenantId);
    if (!assetTypes.has(id)) return notFound('Asset type');
    const fields = assetTypeFields(jsonObjectBody(request));
    if (typeof fields === 'string') return badRequest(fields);
    const assetType = { ...fields, id } as AssetType;
    assetTypes.set(id, assetType);
    return jsonReply(200, assetType);
  });

  const deleteAssetType = inTenant((_request, tenantId, [id]) => (assetTypesOf(tenantId).delete(id) ? emptyReply(204) : notFound('Asset type')));

  /** Only called after inTenant() has checked the tenant. */
  function assetTypesOf(tenantId: string): Map<string, AssetType> {
    const assetTypes = assetTypesByTenant.get(tenantId);
    if (!assetTypes) throw new Error(`unknown tenant ${tenantId}`);
    return assetTypes;
  }

  return {
    name: 'cisco-ei',
    routes: [
      { endpoint: 'ciscoEi.token', path: /^\/iam\/auth\/token$/, methods: { POST: issueToken } },
      { endpoint: 'ciscoEi.me', path: /^\/iam\/users\/me$/, methods: { GET: usersMe } },
      { endpoint: 'ciscoEi.agents', path: /^\/nbapi\/ei\/v1\/agents$/, methods: { GET: listAgents } },
      {
        endpoint: 'ciscoEi.assetTypes',
        path: /^\/nbapi\/ei\/v1\/assetTypes$/,
        methods: { GET: listAssetTypes, POST: createAssetType },
      },
      {
        endpoint: 'ciscoEi.assetTypes',
        path: /^\/nbapi\/ei\/v1\/assetTypes\/([^/]+)$/,
        methods: { GET: getAssetType, PUT: replaceAssetType, DELETE: deleteAssetType },
      },
    ],
    authenticates: authenticated,
    revoke: () => {
      issuer.rotate();
      refreshSecret = randomBytes(32);
    },
    settle: () => issuer.settle(),
  };
}
