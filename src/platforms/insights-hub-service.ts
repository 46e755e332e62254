import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token } from '../core/token.js';
import { checkBaseUrl } from '../core/url.js';
import { listOf } from '../core/words.js';
import { declarePlatform, exchangeProvider } from './declaration.js';
import { readBearerToken } from './response.js';

/**
 * Insights Hub service credentials (docs/protocols.md, Insights Hub service
 * credentials): OAuth 2.0 client credentials at the tenant's identity
 * service, `https://<tenant>.piam.<region>.<domain>/oauth/token`, the client
 * as HTTP Basic, as the official SDK's `CredentialAuth` asks for them. The
 * token is a bearer token for the gateway's APIs.
 */
export interface InsightsHubServiceSettings {
  /** `https://gateway.<region>.<domain>`; a bare region such as `eu1` means `https://gateway.eu1.mindsphere.io`. */
  gateway: string;
  tenant: string;
  clientId: string;
  clientSecret: string;
}

export const TOKEN_PATH = '/oauth/token';
/** Used only when an answer carries neither expires_in nor a JWT exp: the 30 minutes of Insights Hub's tokens. */
export const DEFAULT_LIFETIME_S = 1800;
const WHAT = 'the Insights Hub token endpoint (piam)';
/** The domain of a gateway given as a region alone, as the SDK's CLI completes it (api/utils.js). */
const DEFAULT_DOMAIN = 'mindsphere.io';
/** A tenant is one DNS label of the token endpoint's host: nothing else may get into it. */
const TENANT = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** The token endpoint: the gateway's host with `gateway` replaced by `<tenant>.piam` (the SDK's getPiamUrl); else the gateway's own origin. */
export function tokenUrlOf(settings: Pick<InsightsHubServiceSettings, 'gateway' | 'tenant'>): string {
  const url = new URL(settings.gateway);
  const [first, ...rest] = url.hostname.split('.');
  // A host without the gateway label (the sandbox's 127.0.0.1) keeps it, as the SDK's replace() does.
  if (first === 'gateway' && rest.length > 0) url.hostname = [`${settings.tenant}`, 'piam', ...rest].join('.');
  return `${url.origin}${TOKEN_PATH}`;
}

export function validateSettings(settings: InsightsHubServiceSettings): InsightsHubServiceSettings {
  const missing = (['clientId', 'clientSecret'] as const).filter((k) => !settings[k].trim());
  if (missing.length > 0) {
    throw new IiotAuthError(
      ErrorCode.CREDENTIALS_MISSING,
      `the Insights Hub service credentials config lacks the ${listOf(missing.map((k) => (k === 'clientId' ? 'client id' : 'client secret')))}: open the config node and fill it in`,
    );
  }
  const tenant = settings.tenant.trim().toLowerCase();
  if (!TENANT.test(tenant)) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      tenant
        ? `the tenant "${tenant.slice(0, 64)}" is not a tenant name (letters, digits and hyphens): enter the tenant the service credentials belong to, e.g. "mytenant"`
        : 'the Insights Hub service credentials config lacks the tenant: enter the tenant the service credentials belong to',
    );
  }
  const region = settings.gateway.trim();
  const gateway = /^[a-z]{2,}[0-9]+$/i.test(region) ? `https://gateway.${region.toLowerCase()}.${DEFAULT_DOMAIN}` : region;
  return { ...settings, gateway: checkBaseUrl(gateway, 'the gateway URL'), tenant, clientId: settings.clientId.trim() };
}

/** `POST <piam>/oauth/token`, `grant_type=client_credentials`, the client as HTTP Basic of the plain `id:secret`, as the SDK sends it. */
export function buildTokenRequest(settings: InsightsHubServiceSettings): HttpRequest {
  return {
    method: 'POST',
    url: tokenUrlOf(settings),
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      authorization: `Basic ${Buffer.from(`${settings.clientId}:${settings.clientSecret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
    retry: false,
    carriesSecret: { what: WHAT },
    maxResponseBytes: 1024 * 1024,
  };
}

export function readTokenResponse(res: HttpResponse, now: number): Token {
  return readBearerToken(
    res,
    now,
    WHAT,
    'the client id or secret is wrong, revoked, or of another tenant; check them and the tenant, or create new service credentials in the Insights Hub Settings app (or Operator Cockpit)',
    DEFAULT_LIFETIME_S,
  );
}

export const INSIGHTS_HUB_SERVICE = declarePlatform({
  id: 'insights-hub-service',
  label: 'Insights Hub service credentials',
  configType: 'iiot-insights-hub-service',
  property: 'insightsHubService',
  fields: ['gateway', 'tenant'],
  credentials: { clientId: { type: 'text' }, clientSecret: { type: 'password' } },
  headers: ['authorization'],
  configure: ({ text, credentials }) => {
    const settings = validateSettings({
      gateway: text('gateway'),
      tenant: text('tenant'),
      clientId: credentials.clientId ?? '',
      clientSecret: credentials.clientSecret ?? '',
    });
    return {
      provider: exchangeProvider(settings.gateway, () => buildTokenRequest(settings), readTokenResponse),
      fingerprintParts: { ...settings },
      secrets: [settings.clientSecret],
      basicPairs: [[settings.clientId, settings.clientSecret]],
    };
  },
});
