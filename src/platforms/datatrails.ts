import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { listOf } from '../core/words.js';
import type { HttpClient, HttpRequest, HttpResponse } from '../core/http.js';
import type { Token, TokenProvider } from '../core/token.js';
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
  );
}

export class DataTrailsProvider implements TokenProvider {
  readonly baseUrl: string;
  constructor(private readonly settings: DataTrailsSettings) {
    this.baseUrl = settings.url;
  }

  async fetchToken(http: HttpClient): Promise<Token> {
    return readTokenResponse(await http.send(buildTokenRequest(this.settings)), Date.now());
  }
}
