import { declarePlatform, exchangeProvider } from './declaration.js';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { listOf } from '../core/words.js';
import type { HttpClient, HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token, TokenProvider } from '../core/token.js';
import { checkBaseUrl } from '../core/url.js';
import { readBearerToken } from './response.js';

/**
 * Insights Hub app credentials: the Technical Token Manager (docs/protocols.md, Insights Hub app credentials).
 * A request builder and a response validator, so validation is testable
 * without a network.
 */
export interface InsightsHubAppSettings {
  gateway: string;
  appName: string;
  appVersion: string;
  hostTenant: string;
  userTenant: string;
  clientId: string;
  clientSecret: string;
}

/** The token request's HTTP Basic credentials travel in this header. */
export const SPACE_AUTH_HEADER = 'x-space-auth-key';
export const TOKEN_PATH = '/api/technicaltokenmanager/v3/oauth/token';
/** Used only when a response carries neither expires_in nor a JWT exp: the platform's documented 30 minutes. */
export const DEFAULT_LIFETIME_S = 1800;
const WHAT = 'the Insights Hub token manager';

/** The settings from the MDSP_* variables that Insights Hub's Cloud Foundry sets for an app. */
export function settingsFromEnvironment(env: NodeJS.ProcessEnv, gateway?: string): InsightsHubAppSettings {
  const region = env.HOST_ENVIRONMENT || 'eu1';
  return {
    gateway: gateway || `https://gateway.${region}.mindsphere.io`,
    appName: env.MDSP_OS_VM_APP_NAME ?? '',
    appVersion: env.MDSP_OS_VM_APP_VERSION ?? '',
    hostTenant: env.MDSP_HOST_TENANT ?? '',
    userTenant: env.MDSP_USER_TENANT ?? '',
    clientId: env.MDSP_KEY_STORE_CLIENT_ID ?? '',
    clientSecret: env.MDSP_KEY_STORE_CLIENT_SECRET ?? '',
  };
}

/** Checks the settings up front, naming the field (or variable) that is missing. */
export function validateSettings(settings: InsightsHubAppSettings, fromEnv: boolean): InsightsHubAppSettings {
  const fields: [keyof InsightsHubAppSettings, string, string][] = [
    ['appName', 'app name', 'MDSP_OS_VM_APP_NAME'],
    ['appVersion', 'app version', 'MDSP_OS_VM_APP_VERSION'],
    ['hostTenant', 'host tenant', 'MDSP_HOST_TENANT'],
    ['userTenant', 'user tenant', 'MDSP_USER_TENANT'],
    ['clientId', 'client id', 'MDSP_KEY_STORE_CLIENT_ID'],
    ['clientSecret', 'client secret', 'MDSP_KEY_STORE_CLIENT_SECRET'],
  ];
  const lacking = fields.filter(([key]) => !settings[key].trim());
  const missing = lacking.map(([, label, variable]) => (fromEnv ? variable : label));
  if (missing.length > 0) {
    // Only the credentials missing (an imported flow carries none): say so in the code too.
    const onlyCredentials = !fromEnv && lacking.every(([key]) => key === 'clientId' || key === 'clientSecret');
    throw new IiotAuthError(
      onlyCredentials ? ErrorCode.CREDENTIALS_MISSING : ErrorCode.CONFIG_INVALID,
      fromEnv
        ? `the environment lacks ${listOf(missing)}: run inside Insights Hub's Cloud Foundry, set them, or untick "use environment"`
        : `the Insights Hub app config lacks the ${listOf(missing)}: open the config node and fill it in`,
    );
  }
  return { ...settings, gateway: checkBaseUrl(settings.gateway, 'the gateway URL') };
}

export function buildTokenRequest(settings: InsightsHubAppSettings): HttpRequest {
  const basic = Buffer.from(`${settings.clientId}:${settings.clientSecret}`).toString('base64');
  return {
    method: 'POST',
    url: `${settings.gateway}${TOKEN_PATH}`,
    // Accept */* as the official SDK sends it; grant_type as the vendor documentation's request shows it (the SDK omits it).
    headers: { 'content-type': 'application/json', accept: '*/*', [SPACE_AUTH_HEADER]: `Basic ${basic}` },
    body: JSON.stringify({
      grant_type: 'client_credentials',
      appName: settings.appName,
      appVersion: settings.appVersion,
      hostTenant: settings.hostTenant,
      userTenant: settings.userTenant,
    }),
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
    'the client id or secret is wrong, expired (app credentials last at most 365 days) or revoked, or the app name, version or tenants do not match them; create new app credentials in the Developer or Operator Cockpit',
    DEFAULT_LIFETIME_S,
  );
}

export const INSIGHTS_HUB_APP = declarePlatform({
  id: 'insights-hub-app',
  label: 'Insights Hub app',
  configType: 'iiot-insights-hub-app',
  property: 'insightsHubApp',
  fields: ['gateway', 'appName', 'appVersion', 'hostTenant', 'userTenant', 'useEnv'],
  credentials: { clientId: { type: 'text' }, clientSecret: { type: 'password' } },
  headers: ['authorization'],
  // The token request's own auth header: never carried to another origin either.
  secretHeaders: ['authorization', SPACE_AUTH_HEADER],
  configure: ({ text, flag, credentials, env }) => {
    const useEnv = flag('useEnv');
    const raw: InsightsHubAppSettings = useEnv
      ? settingsFromEnvironment(env, text('gateway'))
      : {
          gateway: text('gateway'),
          appName: text('appName'),
          appVersion: text('appVersion'),
          hostTenant: text('hostTenant'),
          userTenant: text('userTenant'),
          clientId: (credentials.clientId ?? '').trim(),
          clientSecret: credentials.clientSecret ?? '',
        };
    const settings = validateSettings(raw, useEnv);
    return {
      provider: new InsightsHubAppProvider(settings),
      fingerprintParts: { ...settings },
      secrets: [settings.clientSecret],
      basicPairs: [[settings.clientId, settings.clientSecret]],
    };
  },
});

/** The provider as a class, for callers outside the nodes (the benchmark builds one directly). */
export class InsightsHubAppProvider implements TokenProvider {
  readonly baseUrl: string;
  private readonly exchange: TokenProvider;
  constructor(settings: InsightsHubAppSettings) {
    this.exchange = exchangeProvider(settings.gateway, () => buildTokenRequest(settings), readTokenResponse);
    this.baseUrl = this.exchange.baseUrl;
  }

  fetchToken(http: HttpClient): Promise<Token> {
    return this.exchange.fetchToken(http);
  }
}
