import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token } from '../core/token.js';
import { checkBaseUrl } from '../core/url.js';
import { listOf } from '../core/words.js';
import { declarePlatform, exchangeProvider } from './declaration.js';
import { objectBody, readBearerToken } from './response.js';

/**
 * Any OAuth 2.0 API with the client credentials grant (RFC 6749, 4.4): an
 * MES, a historian, a cloud IoT service. The client authenticates in the
 * form body (client_secret_post) or with HTTP Basic (client_secret_basic,
 * RFC 6749 2.3.1); scope, audience and extra parameters go with the request.
 * The token is sent as a bearer token to the API base URL's origin only.
 */
export interface OAuth2Settings {
  tokenUrl: string;
  /** Where API calls go: relative URLs resolve against it, and the token goes nowhere else. */
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  scope: string;
  audience: string;
  clientAuth: 'body' | 'basic';
  /** Further form parameters of the token request, `name=value&name=value`. */
  extraParams: string;
}

/** Used only when an answer carries neither expires_in nor a JWT exp. */
export const DEFAULT_LIFETIME_S = 3600;
const WHAT = 'the OAuth 2.0 token endpoint';
const REJECTED = 'the client id or secret is wrong, or the server expects the other client authentication (body or HTTP Basic); check them in the config node';
/** Parameters the node sets itself: extra parameters may not replace them. */
const RESERVED = ['grant_type', 'client_id', 'client_secret', 'scope', 'audience'];

export function validateSettings(settings: OAuth2Settings): OAuth2Settings {
  const missing = (['clientId', 'clientSecret'] as const).filter((k) => !settings[k].trim());
  if (missing.length > 0) {
    throw new IiotAuthError(
      ErrorCode.CREDENTIALS_MISSING,
      `the OAuth 2.0 config lacks the ${listOf(missing.map((k) => (k === 'clientId' ? 'client id' : 'client secret')))}: open the config node and fill it in`,
    );
  }
  if (settings.clientAuth !== 'body' && settings.clientAuth !== 'basic') {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, 'the OAuth 2.0 client authentication must be "body" or "basic": choose one in the config node');
  }
  const extra = new URLSearchParams(settings.extraParams.trim().replace(/^[?&]/, ''));
  const clash = [...new Set([...extra.keys()].filter((name) => RESERVED.includes(name)))];
  if (clash.length > 0) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the extra token parameters set ${listOf(clash)}, which the node sets itself: use the config node's own fields for them`,
    );
  }
  return {
    ...settings,
    tokenUrl: checkBaseUrl(settings.tokenUrl, 'the token URL'),
    apiUrl: checkBaseUrl(settings.apiUrl, 'the API base URL'),
    clientId: settings.clientId.trim(),
    scope: settings.scope.trim(),
    audience: settings.audience.trim(),
    extraParams: extra.toString(),
  };
}

/** `id:secret` as HTTP Basic carries them: each form-encoded first (RFC 6749 2.3.1). */
export function basicPair(settings: OAuth2Settings): [string, string] {
  const encode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
  return [encode(settings.clientId), encode(settings.clientSecret)];
}

export function buildTokenRequest(settings: OAuth2Settings): HttpRequest {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (settings.clientAuth === 'basic') {
    const [id, secret] = basicPair(settings);
    headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  } else {
    form.set('client_id', settings.clientId);
    form.set('client_secret', settings.clientSecret);
  }
  if (settings.scope) form.set('scope', settings.scope);
  if (settings.audience) form.set('audience', settings.audience);
  for (const [name, value] of new URLSearchParams(settings.extraParams)) form.append(name, value);
  return {
    method: 'POST',
    url: settings.tokenUrl,
    headers,
    body: form.toString(),
    retry: false,
    carriesSecret: { what: WHAT },
    maxResponseBytes: 1024 * 1024,
  };
}

export function readTokenResponse(res: HttpResponse, now: number): Token {
  const token = readBearerToken(res, now, WHAT, REJECTED, DEFAULT_LIFETIME_S);
  const type = tokenType(res);
  // Only a bearer token can be sent as one; a DPoP or MAC token needs proof this node does not make.
  if (type !== undefined && type.toLowerCase() !== 'bearer') {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${WHAT} issued a "${type.slice(0, 40)}" token, not a bearer token: configure the client at the server to get bearer tokens`,
    );
  }
  return token;
}

function tokenType(res: HttpResponse): string | undefined {
  const value = objectBody(res)?.token_type;
  return typeof value === 'string' ? value : undefined;
}

export const OAUTH2 = declarePlatform({
  id: 'oauth2',
  label: 'OAuth 2.0',
  configType: 'iiot-oauth2',
  property: 'oauth2',
  fields: ['tokenUrl', 'apiUrl', 'scope', 'audience', 'clientAuth', 'extraParams'],
  credentials: { clientId: { type: 'text' }, clientSecret: { type: 'password' } },
  headers: ['authorization'],
  configure: ({ text, credentials }) => {
    const settings = validateSettings({
      tokenUrl: text('tokenUrl'),
      apiUrl: text('apiUrl'),
      clientId: credentials.clientId ?? '',
      clientSecret: credentials.clientSecret ?? '',
      scope: text('scope'),
      audience: text('audience'),
      clientAuth: text('clientAuth') === 'basic' ? 'basic' : text('clientAuth') === '' ? 'body' : (text('clientAuth') as 'body'),
      extraParams: text('extraParams'),
    });
    return {
      provider: exchangeProvider(settings.apiUrl, () => buildTokenRequest(settings), readTokenResponse),
      fingerprintParts: { ...settings },
      secrets: [settings.clientSecret],
      basicPairs: [basicPair(settings), [settings.clientId, settings.clientSecret]],
    };
  },
});
