import { declarePlatform, exchangeProvider } from './declaration.js';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { listOf } from '../core/words.js';
import type { HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token } from '../core/token.js';
import { checkBaseUrl } from '../core/url.js';
import { readBearerToken } from './response.js';

/**
 * DataTrails (docs/protocols.md, DataTrails): OpenID Connect client credentials,
 * form-encoded. No refresh token: the engine asks again before expiry.
 */
export interface DataTrailsSettings {
  url: string;
  clientId: string;
  clientSecret: string;
}

export const TOKEN_PATH = '/archivist/iam/v1/appidp/token';
/** Used only when a response carries neither expires_in nor a JWT exp: the documented hour. */
export const DEFAULT_LIFETIME_S = 3600;
const WHAT = 'the DataTrails token endpoint';
/** DataTrails says in seconds how long a 429 asks to wait here (besides or instead of Retry-After). */
export const RATE_LIMIT_RESET = 'archivist-rate-limit-reset';

export function validateSettings(settings: DataTrailsSettings): DataTrailsSettings {
  const missing = (['clientId', 'clientSecret'] as const).filter((k) => !settings[k].trim());
  if (missing.length > 0) {
    throw new IiotAuthError(
      ErrorCode.CREDENTIALS_MISSING,
      `the DataTrails config lacks the ${listOf(missing.map((k) => (k === 'clientId' ? 'client id' : 'client secret')))}: open the config node and fill it in`,
    );
  }
  return { ...settings, url: checkBaseUrl(settings.url || 'https://app.datatrails.ai', 'the DataTrails URL'), clientId: settings.clientId.trim() };
}

export function buildTokenRequest(settings: DataTrailsSettings): HttpRequest {
  return {
    method: 'POST',
    url: `${settings.url}${TOKEN_PATH}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: settings.clientId, client_secret: settings.clientSecret }).toString(),
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
    'the client id or secret is wrong, or the secret expired or was regenerated; see Settings > Integrations in DataTrails',
    DEFAULT_LIFETIME_S,
    [RATE_LIMIT_RESET],
  );
}

export const DATATRAILS = declarePlatform({
  id: 'datatrails',
  label: 'DataTrails',
  configType: 'iiot-datatrails',
  property: 'dataTrails',
  fields: ['url'],
  credentials: { clientId: { type: 'text' }, clientSecret: { type: 'password' } },
  headers: ['authorization'],
  rateLimitHeaders: [RATE_LIMIT_RESET],
  configure: ({ text, credentials }) => {
    const settings = validateSettings({ url: text('url'), clientId: credentials.clientId ?? '', clientSecret: credentials.clientSecret ?? '' });
    return {
      provider: exchangeProvider(settings.url, () => buildTokenRequest(settings), readTokenResponse),
      fingerprintParts: { ...settings },
      secrets: [settings.clientSecret],
    };
  },
});
