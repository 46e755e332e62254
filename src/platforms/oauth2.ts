import { codeNames, ErrorCode, type ErrorCodeTable, IiotAuthError } from '../core/errors.js';
import type { HttpClient, HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token, TokenProvider } from '../core/token.js';
import { checkBaseUrl } from '../core/url.js';
import { listOf } from '../core/words.js';
import { type ConfigInput, declarePlatform, type ProviderSetup } from './declaration.js';
import {
  authenticate,
  basicPair,
  CLIENT_AUTH_METHODS,
  chooseAlg,
  type ClientAuthMethod,
  type ClientAuthSetting,
  type ClientCredentials,
  needsSecret,
  pickMethod,
  readSigningKey,
  SIGNING_ALGS,
  type SigningKey,
  usesTls,
} from './oauth2-client-auth.js';
import { checkIssuer, discover, type ServerMetadata } from './oauth2-discovery.js';
import { asksForDpop, DPOP_SETTINGS, DpopPolicy, type DpopProver, type DpopSetting } from './oauth2-dpop.js';
import { readResources } from './oauth2-resource.js';
import { objectBody, oneLine, readBearerToken, serverSaid, tokenEndpointError } from './response.js';

export { basicPair };

/**
 * Any OAuth 2.0 API with the client credentials grant (RFC 6749 4.4): an
 * MES, a historian, a cloud IoT service. The token endpoint is configured,
 * or found from the issuer's metadata (./oauth2-discovery.ts); the client
 * authenticates by one of the methods of ./oauth2-client-auth.ts; scope,
 * audience and extra parameters go with the request. The token is sent as a
 * bearer token to the API base URL's origin only.
 */
export interface OAuth2Settings {
  /** The authorization server's issuer (RFC 8414), for discovery; '' when the token URL is given instead. */
  issuer: string;
  /** The token endpoint; '' when the issuer's metadata names it. Wins over the metadata when both are set. */
  tokenUrl: string;
  /** Where API calls go: relative URLs resolve against it, and the token goes nowhere else. */
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  /** private_key_jwt: the client's private key, PEM, optionally followed by its certificate. */
  privateKey: string;
  /** private_key_jwt: the `kid` of the assertion; '' for none (or the certificate's x5t#S256). */
  keyId: string;
  /** private_key_jwt: RS256, PS256, ES256, …; '' picks from the key and the server's list. */
  signingAlg: string;
  scope: string;
  audience: string;
  /** Resource indicators (RFC 8707): absolute URIs separated by spaces; each is sent as a `resource` parameter. */
  resource: string;
  clientAuth: ClientAuthSetting;
  /** Further form parameters of the token request, `name=value&name=value`. */
  extraParams: string;
  /** How tokens come: the client's own (client credentials), or a user's login in the editor, then the refresh token (./oauth2-login.ts). */
  grant: OAuth2Grant;
  /** Tokens bound to a key of the config node (RFC 9449, ./oauth2-dpop.ts): `auto` once the server turns out to require it. */
  dpop: DpopSetting;
}

export const OAUTH2_GRANTS = ['client_credentials', 'authorization_code'] as const;
export type OAuth2Grant = (typeof OAUTH2_GRANTS)[number];

/** Used only when an answer carries neither expires_in nor a JWT exp. */
export const DEFAULT_LIFETIME_S = 3600;
const WHAT = 'the OAuth 2.0 token endpoint';
/** Parameters the node sets itself: extra parameters may not replace them. */
const RESERVED = ['grant_type', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type', 'scope', 'audience'];

/** The codes only the OAuth 2.0 platform raises: the server's own errors of RFC 6749 5.2 that the config node can fix. */
export const OAUTH2_ERROR_CODES = {
  CLIENT_UNAUTHORIZED: {
    meaning: 'the authorization server answered `unauthorized_client`: it knows the client, but the client may not use this grant (client credentials)',
    action: 'allow the grant for the client at the server (in Keycloak: "Service accounts roles"; in Entra ID: an application permission)',
  },
  SCOPE_INVALID: {
    meaning: 'the authorization server answered `invalid_scope`: a scope of the config node is unknown, or not granted to this client',
    action: 'correct the scope in the config node, or grant it to the client at the server; the message quotes the server',
  },
  RESOURCE_INVALID: {
    meaning:
      'the authorization server answered `invalid_target` (RFC 8707): it does not know a resource of the config node, does not allow it for this client, or takes fewer resources in one request',
    action:
      "write the API's identifier exactly as the server registered it in the config node's resource (or ask for one resource per config node), or allow the resource for the client at the server; the message quotes the server",
  },
  GRANT_INVALID: {
    meaning: 'the authorization server answered `invalid_grant`: the grant (or a resource or audience it names) is not valid for this client',
    action: "check the audience, resource and extra parameters against the server's configuration; the message quotes the server",
  },
  DPOP_REJECTED: {
    meaning:
      'the token endpoint refused the DPoP proof (`invalid_dpop_proof`, or `use_dpop_nonce` again after the one retry with its nonce), issued a DPoP token to a config node set to never, or a bearer token to one set to always (an API that refuses a proof answers 401, which the request node passes on)',
    action:
      "set DPoP to auto or always in the config node when the server requires it; otherwise check this machine's clock (proofs carry the time) and that the server takes ES256 proofs; the message quotes the server",
  },
  LOGIN_STORE_ERROR: {
    meaning:
      'the stored login of an OAuth 2.0 config node with the authorization code grant (its refresh token) cannot be read or written: disk full or permissions, Redis down, another Node-RED instance holding its lock, too few replicas, or it is encrypted and the key is missing or wrong',
    action:
      'the message names the store and the cause: fix it (the same settings as agent state: iiotAuth.agentStore, iiotAuth.oauth2StateDir); if the stored login is lost, log in again in the config dialog',
  },
} as const satisfies ErrorCodeTable;

export const OAuth2ErrorCode = codeNames(OAUTH2_ERROR_CODES);

declare module '../core/errors.js' {
  interface PlatformErrorCodes extends Record<keyof typeof OAUTH2_ERROR_CODES, unknown> {}
}

const CREDENTIAL_NAMES = {
  clientId: 'client id',
  clientSecret: 'client secret',
  privateKey: 'private key',
  secretOrKey: 'client secret or private key',
} as const;

/** Checks the settings at deploy; nothing is sent when they cannot work. `tls` says whether a TLS config node is chosen. */
export function validateSettings(settings: OAuth2Settings, tls = false): OAuth2Settings {
  const method = settings.clientAuth;
  if (!CLIENT_AUTH_METHODS.includes(method)) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the OAuth 2.0 client authentication must be one of ${CLIENT_AUTH_METHODS.join(', ')}: choose one in the config node`,
    );
  }
  const required: Array<keyof typeof CREDENTIAL_NAMES> = ['clientId'];
  if (needsSecret(method)) required.push('clientSecret');
  if (method === 'private_key_jwt') required.push('privateKey');
  if (method === 'auto' && !settings.clientSecret.trim() && !settings.privateKey.trim()) required.push('secretOrKey');
  const missing = required.filter((k) => k === 'secretOrKey' || !settings[k].trim());
  if (missing.length > 0) {
    throw new IiotAuthError(
      ErrorCode.CREDENTIALS_MISSING,
      `the OAuth 2.0 config lacks the ${listOf(missing.map((k) => CREDENTIAL_NAMES[k]))}: open the config node and fill it in`,
    );
  }
  if (usesTls(method) && !tls) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the client authentication ${method} needs the client certificate of a TLS config node: choose one (with certificate and key) in the config node`,
    );
  }
  if (!OAUTH2_GRANTS.includes(settings.grant)) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `the OAuth 2.0 grant must be one of ${OAUTH2_GRANTS.join(', ')}: choose one in the config node`);
  }
  if (settings.grant === 'authorization_code' && !settings.issuer.trim()) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'the authorization code grant needs the issuer (its metadata names the authorization endpoint the login opens): enter it in the config node',
    );
  }
  if (!DPOP_SETTINGS.includes(settings.dpop)) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `DPoP must be one of ${DPOP_SETTINGS.join(', ')}: choose one in the config node`);
  }
  if (settings.signingAlg && !SIGNING_ALGS.includes(settings.signingAlg as (typeof SIGNING_ALGS)[number])) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `the signing algorithm must be one of ${SIGNING_ALGS.join(', ')}, or empty to pick it from the key`);
  }
  if (!settings.issuer.trim() && !settings.tokenUrl.trim()) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'the OAuth 2.0 config needs the issuer (its metadata names the token endpoint) or the token URL: enter one',
    );
  }
  const resources = readResources(settings.resource);
  const extra = new URLSearchParams(settings.extraParams.trim().replace(/^[?&]/, ''));
  // A `resource` among the extra parameters still works (flows from before the field), unless the field is set too.
  const reserved = resources.length > 0 ? [...RESERVED, 'resource'] : RESERVED;
  const clash = [...new Set([...extra.keys()].filter((name) => reserved.includes(name)))];
  if (clash.length > 0) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the extra token parameters set ${listOf(clash)}, which the node sets itself: use the config node's own fields for them`,
    );
  }
  return {
    ...settings,
    issuer: settings.issuer.trim() ? checkIssuer(settings.issuer) : '',
    tokenUrl: settings.tokenUrl.trim() ? checkBaseUrl(settings.tokenUrl, 'the token URL') : '',
    apiUrl: checkBaseUrl(settings.apiUrl, 'the API base URL'),
    clientId: settings.clientId.trim(),
    keyId: settings.keyId.trim(),
    scope: settings.scope.trim(),
    audience: settings.audience.trim(),
    resource: resources.join(' '),
    extraParams: extra.toString(),
  };
}

/** Where a token request goes and how the client authenticates there. */
export interface TokenEndpoint {
  url: string;
  method: ClientAuthMethod;
  /** The algorithms the server lists for assertions; empty when it says nothing. */
  signingAlgs: readonly string[];
}

/** The endpoint of a token request: the configured URL, else the metadata's (its mTLS alias for a certificate-authenticated client). */
export function tokenEndpointOf(settings: OAuth2Settings, client: ClientCredentials, metadata: ServerMetadata | undefined): TokenEndpoint {
  // Without metadata, RFC 8414 2's default (client_secret_basic) stands, and a private key is taken when there is one.
  const method = settings.clientAuth === 'auto' ? pickMethod(metadata?.authMethods ?? ['private_key_jwt', 'client_secret_basic'], client) : settings.clientAuth;
  const fromMetadata = metadata && (usesTls(method) ? (metadata.mtlsTokenEndpoint ?? metadata.tokenEndpoint) : metadata.tokenEndpoint);
  const url = settings.tokenUrl || fromMetadata;
  // validateSettings demands one of the two, and the metadata comes whenever there is no token URL.
  if (!url) throw new IiotAuthError(ErrorCode.CONFIG_INVALID, 'the OAuth 2.0 config needs the issuer or the token URL: enter one');
  return { url, method, signingAlgs: metadata?.signingAlgs ?? [] };
}

/**
 * A token request: the client credentials grant by default; `grant` gives
 * another grant's parameters (refresh token, authorization code). The code
 * exchange carries only its own parameters: the scope was asked for at the
 * authorization endpoint.
 */
export async function buildTokenRequest(
  settings: OAuth2Settings,
  client: ClientCredentials,
  endpoint: TokenEndpoint,
  grant: Record<string, string> = { grant_type: 'client_credentials' },
  dpopProof?: string,
): Promise<HttpRequest> {
  const form = new URLSearchParams(grant);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  await authenticate(endpoint.method, client, endpoint.url, form, headers, endpoint.signingAlgs);
  if (dpopProof) headers.dpop = dpopProof;
  // The code exchange names only the code (RFC 6749 4.1.3): scope and the rest were settled at the login.
  if (grant.grant_type !== 'authorization_code') {
    if (settings.scope) form.set('scope', settings.scope);
    if (settings.audience) form.set('audience', settings.audience);
    for (const resource of settings.resource.split(' ').filter(Boolean)) form.append('resource', resource);
    for (const [name, value] of new URLSearchParams(settings.extraParams)) form.append(name, value);
  }
  return {
    method: 'POST',
    url: endpoint.url,
    headers,
    body: form.toString(),
    retry: false,
    carriesSecret: { what: WHAT },
    maxResponseBytes: 1024 * 1024,
  };
}

/**
 * Sends a token request, with a DPoP proof when the config node uses DPoP;
 * once more with the server's nonce when it asks for one (RFC 9449 8), and,
 * with `auto`, once more with a proof when a refusal may mean the server
 * requires DPoP (see DpopPolicy). Each attempt is built anew: a client
 * assertion or proof is never sent twice.
 */
export async function sendTokenRequest(
  http: HttpClient,
  parts: { settings: OAuth2Settings; client: ClientCredentials; endpoint: TokenEndpoint; dpop: DpopPolicy; metadata: ServerMetadata | undefined },
  grant?: Record<string, string>,
): Promise<{ res: HttpResponse; prover: DpopProver | undefined }> {
  const { settings, client, endpoint, dpop, metadata } = parts;
  const attempt = async (prover: DpopProver | undefined) => {
    const send = async () => {
      const made = await prover?.make('POST', endpoint.url);
      return { made, res: await http.send(await buildTokenRequest(settings, client, endpoint, grant, made?.value)) };
    };
    const first = await send();
    return first.made?.refusedForNonce(first.res) ? (await send()).res : first.res;
  };
  const prover = await dpop.proverFor(metadata);
  const res = await attempt(prover);
  // Not for a refresh: its refusal is about the refresh token (a login's DPoP is settled at its code exchange), which is not sent twice for nothing.
  const tryProof = !prover && res.statusCode !== 200 && grant?.grant_type !== 'refresh_token';
  const trial = tryProof ? await dpop.trialFor(res, metadata) : undefined;
  if (!trial) return { res, prover };
  const again = await attempt(trial);
  if (again.statusCode === 200) {
    dpop.confirm();
    return { res: again, prover: trial };
  }
  // Not DPoP after all: the first refusal is the one to report, unless the second speaks of DPoP.
  return asksForDpop(again) ? { res: again, prover: trial } : { res, prover: undefined };
}

/** What to check when the server refuses the client's authentication, per method. */
const REJECTED: Readonly<Record<ClientAuthMethod, string>> = {
  body: 'the client id or secret is wrong, or the server expects another client authentication (HTTP Basic, say); check them in the config node',
  basic: 'the client id or secret is wrong, or the server expects another client authentication (in the body, say); check them in the config node',
  client_secret_jwt:
    "the client id or secret is wrong, the server does not take client_secret_jwt from this client, or this machine's clock is off (the assertion lives 60 s)",
  private_key_jwt:
    "the server does not know this key for the client (register its public key or certificate there, check the key id), or this machine's clock is off (the assertion lives 60 s)",
  tls_client_auth: "the server does not accept the TLS config node's client certificate for this client: register its subject for the client at the server",
  self_signed_tls_client_auth:
    "the server does not accept the TLS config node's client certificate for this client: register the certificate for the client at the server",
};

/** How the token request was sent: with a DPoP proof of this prover, under this setting. */
export interface TokenBinding {
  prover: DpopProver | undefined;
  dpop: DpopSetting;
}

export function readTokenResponse(
  res: HttpResponse,
  now: number,
  method: ClientAuthMethod = 'body',
  scope = '',
  grant = 'client credentials',
  resource = '',
  binding: TokenBinding = { prover: undefined, dpop: 'never' },
): Token {
  if (res.statusCode !== 200) throw providerError(res, method, scope, grant, resource, binding.dpop);
  const token = readBearerToken(res, now, WHAT, REJECTED[method], DEFAULT_LIFETIME_S);
  const type = tokenType(res)?.toLowerCase();
  const { prover } = binding;
  // A DPoP token (RFC 9449 5) is sent with its scheme and a proof per request; only a bearer token can go without.
  if (type === 'dpop' && prover) {
    return { ...token, type: 'dpop', headers: { authorization: `DPoP ${token.value}` }, proof: prover.forToken(token.value) };
  }
  if (type === 'dpop') {
    throw new IiotAuthError(
      OAuth2ErrorCode.DPOP_REJECTED,
      `${WHAT} issued a DPoP token, which needs a proof with every request: set DPoP to auto or always in the config node`,
    );
  }
  if (type !== undefined && type !== 'bearer') {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${WHAT} issued a "${oneLine(type, 40)}" token, not a bearer or DPoP token: configure the client at the server to get bearer tokens`,
    );
  }
  // The user asked for bound tokens: a server that ignored the proof (RFC 9449 5: one without DPoP does) gives none.
  if (binding.dpop === 'always') {
    throw new IiotAuthError(
      OAuth2ErrorCode.DPOP_REJECTED,
      `${WHAT} issued a bearer token although the request carried a DPoP proof (DPoP is set to always): enable DPoP for the client at the server, or set DPoP to auto`,
    );
  }
  return token;
}

/**
 * The error of an answer other than 200: the OAuth 2.0 error codes of
 * RFC 6749 5.2 that the config node can fix get their own code, with the
 * server's `error_description` quoted as it wrote it; the rest as every
 * platform's token endpoint.
 */
export function providerError(
  res: HttpResponse,
  method: ClientAuthMethod,
  scope: string,
  grant = 'client credentials',
  resource = '',
  dpop: DpopSetting = 'never',
): IiotAuthError {
  const error = objectBody(res)?.error;
  const status = res.statusCode;
  const said = serverSaid(res);
  const options = { statusCode: status };
  if (status === 400 || status === 401 || status === 403) {
    switch (error) {
      case 'invalid_client':
        return new IiotAuthError(ErrorCode.AUTH_REJECTED, `${WHAT} rejected the credentials (${status}): ${REJECTED[method]}${said}`, options);
      case 'unauthorized_client':
        return new IiotAuthError(
          OAuth2ErrorCode.CLIENT_UNAUTHORIZED,
          `${WHAT} does not let this client use the ${grant} grant (${status}): allow it for the client at the server${said}`,
          options,
        );
      case 'invalid_scope':
        return new IiotAuthError(
          OAuth2ErrorCode.SCOPE_INVALID,
          `${WHAT} refused the scope "${scope}" (${status}): correct the scope in the config node, or grant it to the client at the server${said}`,
          options,
        );
      case 'invalid_target':
        return new IiotAuthError(
          OAuth2ErrorCode.RESOURCE_INVALID,
          `${WHAT} refused the resource ${resource ? `"${resource}"` : '(none sent: an audience or extra parameter named one)'} (${status}): write the API's identifier as the server registered it, or allow it for the client at the server${said}`,
          options,
        );
      case 'invalid_dpop_proof':
      case 'use_dpop_nonce':
        return new IiotAuthError(
          OAuth2ErrorCode.DPOP_REJECTED,
          `${WHAT} refused the DPoP proof (${error}, ${status}): check this machine's clock (proofs carry the time) and that the server takes ES256 proofs${said}`,
          options,
        );
      case 'invalid_grant':
        if (dpop === 'never' && asksForDpop(res)) {
          return new IiotAuthError(
            OAuth2ErrorCode.DPOP_REJECTED,
            `${WHAT} wants a DPoP proof from this client (${status}), and DPoP is set to never: set it to auto or always in the config node${said}`,
            options,
          );
        }
        return new IiotAuthError(
          OAuth2ErrorCode.GRANT_INVALID,
          `${WHAT} refused the grant (${status}): check the audience, resource and extra parameters against the server's configuration${dpop === 'never' ? '; if the server requires DPoP of this client, set DPoP to auto or always' : ''}${said}`,
          options,
        );
    }
  }
  return tokenEndpointError(res, WHAT, REJECTED[method]);
}

function tokenType(res: HttpResponse): string | undefined {
  const value = objectBody(res)?.token_type;
  return typeof value === 'string' ? value : undefined;
}

/**
 * The token provider: discovery (once, cached; after a failure again with
 * the next token request, which the engine's back-off paces), then the token
 * request with a fresh client authentication.
 */
export function oauth2Provider(settings: OAuth2Settings, client: ClientCredentials): TokenProvider {
  // The config node's DPoP key lives as long as it does: the tokens it binds live only in memory too.
  const dpop = new DpopPolicy(settings.dpop);
  let metadata: Promise<ServerMetadata> | undefined;
  const metadataOf = (http: HttpClient): Promise<ServerMetadata> | undefined => {
    if (!settings.issuer || (settings.tokenUrl && settings.clientAuth !== 'auto')) return undefined;
    if (!metadata) {
      const fetching = discover(http, settings.issuer);
      metadata = fetching;
      fetching.catch(() => {
        if (metadata === fetching) metadata = undefined;
      });
    }
    return metadata;
  };
  return {
    baseUrl: settings.apiUrl,
    async fetchToken(http: HttpClient): Promise<Token> {
      const metadata = await metadataOf(http);
      const endpoint = tokenEndpointOf(settings, client, metadata);
      const { res, prover } = await sendTokenRequest(http, { settings, client, endpoint, dpop, metadata });
      return readTokenResponse(res, Date.now(), endpoint.method, settings.scope, 'client credentials', settings.resource, { prover, dpop: settings.dpop });
    },
  };
}

export const OAUTH2 = declarePlatform({
  id: 'oauth2',
  label: 'OAuth 2.0',
  configType: 'iiot-oauth2',
  property: 'oauth2',
  fields: ['issuer', 'tokenUrl', 'apiUrl', 'scope', 'audience', 'resource', 'clientAuth', 'keyId', 'signingAlg', 'extraParams', 'grant', 'dpop'],
  credentials: { clientId: { type: 'text' }, clientSecret: { type: 'password' }, privateKey: { type: 'password' } },
  headers: ['authorization'],
  errorCodes: OAUTH2_ERROR_CODES,
  configure: (input) => {
    const { settings, client } = oauth2Client(input);
    return {
      provider: oauth2Provider(settings, client),
      ...setupParts(settings),
    };
  },
});

/** The settings and client of a config node, checked. */
export function oauth2Client({ text, credentials }: ConfigInput): { settings: OAuth2Settings; client: ClientCredentials } {
  const settings = validateSettings(
    {
      issuer: text('issuer'),
      tokenUrl: text('tokenUrl'),
      apiUrl: text('apiUrl'),
      clientId: credentials.clientId ?? '',
      clientSecret: credentials.clientSecret ?? '',
      privateKey: credentials.privateKey ?? '',
      keyId: text('keyId'),
      signingAlg: text('signingAlg'),
      scope: text('scope'),
      audience: text('audience'),
      resource: text('resource'),
      // Flows from before the property: the body, as then.
      clientAuth: (text('clientAuth') || 'body') as ClientAuthSetting,
      extraParams: text('extraParams'),
      // Flows from before the property: client credentials, as then.
      grant: (text('grant') || 'client_credentials') as OAuth2Grant,
      // Flows from before the property: auto, which changes nothing unless the server offers or requires DPoP.
      dpop: (text('dpop') || 'auto') as DpopSetting,
    },
    text('tls') !== '',
  );
  const usesKey = settings.clientAuth === 'private_key_jwt' || (settings.clientAuth === 'auto' && settings.privateKey.trim() !== '');
  const signingKey: SigningKey | undefined = usesKey ? readSigningKey(settings.privateKey) : undefined;
  // An algorithm the key cannot sign with is a setting to fix at deploy, not a token request that fails and backs off.
  if (signingKey && settings.signingAlg) chooseAlg(signingKey, settings.signingAlg, []);
  const client: ClientCredentials = {
    clientId: settings.clientId,
    clientSecret: settings.clientSecret,
    signingKey,
    keyId: settings.keyId,
    signingAlg: settings.signingAlg,
  };
  return { settings, client };
}

/** What every OAuth 2.0 config node's set-up shares, whatever its grant. */
export function setupParts(settings: OAuth2Settings): Omit<ProviderSetup, 'provider'> {
  return {
    fingerprintParts: { ...settings },
    secrets: [settings.clientSecret, settings.privateKey],
    basicPairs: [basicPair(settings), [settings.clientId, settings.clientSecret]],
  };
}
