import { declarePlatform, exchangeProvider } from './declaration.js';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { listOf } from '../core/words.js';
import type { HttpClient, HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token } from '../core/token.js';
import { checkBaseUrl } from '../core/url.js';
import { jsonObject, readBearerToken } from './response.js';

/**
 * Cisco IoT Operations Dashboard, Edge Intelligence (docs/protocols.md, Cisco EI):
 * username and password for a 5-minute bearer token, re-requested before it
 * runs out (no refresh grant is documented). Every API call also carries the
 * tenant in `x-tenant-id`.
 */
export interface CiscoEiSettings {
  server: string;
  tenantId: string;
  username: string;
  password: string;
}

export interface Tenant {
  id: string;
  name: string;
}

export const TOKEN_PATH = '/iam/auth/token';
export const ME_PATH = '/iam/users/me';
/** Used only when a response carries no expires_in: the platform's documented 5 minutes. */
export const DEFAULT_LIFETIME_S = 300;
const WHAT = 'the Cisco EI token endpoint';
/** Every API call names the tenant in this header. */
export const TENANT_HEADER = 'x-tenant-id';
const REJECTED = 'the username or password is wrong, or the user is locked; check them in IoT Operations Dashboard';

export function validateSettings(settings: CiscoEiSettings, requireTenant = true): CiscoEiSettings {
  const required: Array<'username' | 'password' | 'tenantId'> = ['username', 'password', ...(requireTenant ? (['tenantId'] as const) : [])];
  const missing = required.filter((k) => !settings[k].trim());
  if (missing.length > 0) {
    const labels = missing.map((k) => (k === 'tenantId' ? 'tenant id' : k));
    const code = missing.includes('tenantId') ? ErrorCode.CONFIG_INVALID : ErrorCode.CREDENTIALS_MISSING;
    throw new IiotAuthError(
      code,
      `the Cisco EI config lacks the ${listOf(labels)}: open the config node and fill it in${missing.includes('tenantId') ? ' ("Look up tenants" finds the tenant id)' : ''}`,
    );
  }
  return { ...settings, server: checkBaseUrl(settings.server, 'the server URL'), tenantId: settings.tenantId.trim() };
}

export function buildTokenRequest(settings: CiscoEiSettings): HttpRequest {
  return {
    method: 'POST',
    url: `${settings.server}${TOKEN_PATH}`,
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ username: settings.username, password: settings.password }),
    retry: false,
    carriesSecret: { what: WHAT },
    maxResponseBytes: 1024 * 1024,
  };
}

/** The token with the tenant header every EI API call needs. */
export function readTokenResponse(res: HttpResponse, now: number, tenantId: string): Token {
  const token = readBearerToken(res, now, WHAT, REJECTED, DEFAULT_LIFETIME_S);
  return { ...token, headers: { ...token.headers, [TENANT_HEADER]: tenantId } };
}

export function buildTenantsRequest(server: string, accessToken: string): HttpRequest {
  return {
    method: 'GET',
    url: `${server}${ME_PATH}`,
    headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
    maxResponseBytes: 1024 * 1024,
    carriesSecret: { what: 'the Cisco EI user endpoint' },
  };
}

/** The tenants the user can act in, from `roles` (one entry per role, so tenants repeat). */
export function readTenantsResponse(res: HttpResponse): Tenant[] {
  const what = 'the Cisco EI user endpoint';
  if (res.statusCode !== 200) {
    throw new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, `${what} answered ${res.statusCode}: the user may lack the permission to read its own profile`, {
      statusCode: res.statusCode,
    });
  }
  const roles = jsonObject(res, what).roles;
  if (!Array.isArray(roles)) throw new IiotAuthError(ErrorCode.TOKEN_RESPONSE_INVALID, `${what} answered without "roles"`);
  const tenants = new Map<string, Tenant>();
  for (const role of roles as Record<string, unknown>[]) {
    if (role && typeof role.tenant_id === 'string' && !tenants.has(role.tenant_id)) {
      tenants.set(role.tenant_id, { id: role.tenant_id, name: typeof role.tenant_name === 'string' ? role.tenant_name : role.tenant_id });
    }
  }
  return [...tenants.values()];
}

/** Logs in and lists the user's tenants: for the config dialog's "Look up tenants". */
export async function lookUpTenants(http: HttpClient, settings: CiscoEiSettings): Promise<Tenant[]> {
  const token = readBearerToken(await http.send(buildTokenRequest(settings)), Date.now(), WHAT, REJECTED, DEFAULT_LIFETIME_S);
  return readTenantsResponse(await http.send(buildTenantsRequest(settings.server, token.value)));
}

export const CISCO_EI = declarePlatform({
  id: 'cisco-ei',
  label: 'Cisco EI',
  configType: 'iiot-cisco-ei',
  property: 'ciscoEi',
  fields: ['server', 'tenantId'],
  credentials: { username: { type: 'text' }, password: { type: 'password' } },
  headers: ['authorization', TENANT_HEADER],
  configure: ({ text, credentials }) => {
    const settings = validateSettings({
      server: text('server'),
      tenantId: text('tenantId'),
      username: credentials.username ?? '',
      password: credentials.password ?? '',
    });
    return {
      provider: exchangeProvider(
        settings.server,
        () => buildTokenRequest(settings),
        (res, now) => readTokenResponse(res, now, settings.tenantId),
      ),
      fingerprintParts: { ...settings },
      secrets: [settings.password],
    };
  },
});
