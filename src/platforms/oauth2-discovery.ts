import { describeUrl, ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpClient, HttpResponse } from '../core/http/index.js';
import { checkBaseUrl } from '../core/url.js';
import { isJsonObject, oneLine, parseJson } from './response.js';

/**
 * Authorization server metadata (RFC 8414; OpenID Connect Discovery 1.0):
 * an issuer URL alone names the token endpoint and the client
 * authentications the server takes. Only what the package uses is read.
 */
export interface ServerMetadata {
  issuer: string;
  tokenEndpoint: string;
  /** RFC 8414 2: absent means client_secret_basic only. */
  authMethods: readonly string[];
  /** RFC 8414 2 `token_endpoint_auth_signing_alg_values_supported`; empty when the server does not say. */
  signingAlgs: readonly string[];
  /** RFC 8705 5: the token endpoint for clients that authenticate with their TLS certificate, when it differs. */
  mtlsTokenEndpoint?: string;
  /** RFC 8414 2: where the browser goes for the authorization code grant; absent for a server without it. */
  authorizationEndpoint?: string;
  /** RFC 8414 2 `revocation_endpoint` (RFC 7009): where a log-out revokes the refresh token; absent when the server has none. */
  revocationEndpoint?: string;
  /** RFC 9449 5.1 `dpop_signing_alg_values_supported`: the server offers DPoP with these algorithms; empty when it does not. */
  dpopAlgs: readonly string[];
}

const WHAT = "the OAuth 2.0 server's metadata";

/**
 * Checks an issuer as RFC 8414 2 defines it: an https URL (http only on
 * loopback, for tests and local servers) without query or fragment. Returned
 * as typed, trimmed: the metadata's `issuer` must equal it exactly (3.3).
 */
export function checkIssuer(value: string): string {
  const issuer = value.trim();
  checkBaseUrl(issuer, 'the issuer');
  const url = new URL(issuer);
  if (url.search || url.hash || issuer.includes('?') || issuer.includes('#')) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, 'the issuer must not have a query or fragment (RFC 8414 2): enter it as the server publishes it');
  }
  if (url.protocol !== 'https:' && !isLoopback(url)) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'the issuer must be an https URL (http only on this machine: 127.0.0.1, ::1 or localhost); for a server on plain http elsewhere, leave the issuer empty and enter its token URL',
    );
  }
  return issuer;
}

/** 127.0.0.0/8, ::1 or localhost: where plain http cannot be overheard on a network. */
export function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Where the metadata may be, in the order asked: RFC 8414 3.1 inserts
 * `/.well-known/oauth-authorization-server` between the host and the
 * issuer's path; OpenID Connect Discovery 4.1 appends
 * `/.well-known/openid-configuration` to the issuer.
 */
export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [`${url.origin}/.well-known/oauth-authorization-server${path}`, `${url.origin}${path}/.well-known/openid-configuration`];
}

/** Fetches and checks the metadata: the first of metadataUrls that answers 200. */
export async function discover(http: HttpClient, issuer: string): Promise<ServerMetadata> {
  const misses: string[] = [];
  for (const url of metadataUrls(issuer)) {
    // No redirect: the metadata must come from the issuer's own host, over the connection the TLS settings check.
    // No retry: discovery is part of the token request, whose failures the token engine's back-off paces.
    const res = await http.send({
      method: 'GET',
      url,
      headers: { accept: 'application/json' },
      followRedirects: false,
      retry: false,
      maxResponseBytes: 512 * 1024,
    });
    if (res.statusCode === 200) return readMetadata(res, issuer);
    if (res.statusCode >= 500 || res.statusCode === 429) {
      throw new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, `${WHAT} at ${describeUrl(url)} answered ${res.statusCode}: tried again after a pause`, {
        statusCode: res.statusCode,
      });
    }
    misses.push(`${describeUrl(url)} (${res.statusCode})`);
  }
  throw new IiotAuthError(
    ErrorCode.CONFIG_INVALID,
    `the issuer publishes no metadata: ${misses.join(' and ')}; check the issuer URL, or enter the token URL instead`,
  );
}

/** Reads a metadata document and checks it (RFC 8414 3.2 and 3.3); nothing is sent to a server it names before that. */
export function readMetadata(res: HttpResponse, issuer: string): ServerMetadata {
  const where = describeUrl(res.url);
  const body = parseJson(res)?.value;
  if (!isJsonObject(body)) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${WHAT} at ${where} is not a JSON object: check the issuer URL`);
  }
  if (body.issuer !== issuer) {
    const named = typeof body.issuer === 'string' ? `"${oneLine(body.issuer, 100)}"` : 'no issuer';
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `${WHAT} at ${where} names ${named}, not the configured issuer "${issuer}" (RFC 8414 3.3 wants them identical): nothing was sent; enter the issuer exactly as the server names it`,
    );
  }
  const tokenEndpoint = endpoint(body, 'token_endpoint', issuer, where);
  if (tokenEndpoint === undefined) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${WHAT} at ${where} names no token_endpoint: enter the token URL in the config node`);
  }
  const authorizationEndpoint = endpoint(body, 'authorization_endpoint', issuer, where);
  const revocationEndpoint = endpoint(body, 'revocation_endpoint', issuer, where);
  const aliases = isJsonObject(body.mtls_endpoint_aliases) ? body.mtls_endpoint_aliases : {};
  const mtlsTokenEndpoint = endpoint(aliases, 'token_endpoint', issuer, where, 'mtls_endpoint_aliases.token_endpoint');
  return {
    issuer,
    tokenEndpoint,
    authMethods: strings(body.token_endpoint_auth_methods_supported) ?? ['client_secret_basic'],
    signingAlgs: strings(body.token_endpoint_auth_signing_alg_values_supported) ?? [],
    dpopAlgs: strings(body.dpop_signing_alg_values_supported) ?? [],
    ...(mtlsTokenEndpoint ? { mtlsTokenEndpoint } : {}),
    ...(authorizationEndpoint ? { authorizationEndpoint } : {}),
    ...(revocationEndpoint ? { revocationEndpoint } : {}),
  };
}

/** An endpoint of the metadata: an absolute URL, https unless the issuer itself is on loopback. */
function endpoint(body: Record<string, unknown>, field: string, issuer: string, where: string, name = field): string | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `${WHAT} at ${where} has a ${name} that is no http(s) URL: nothing was sent; the server is misconfigured`,
    );
  }
  if (url.protocol !== 'https:' && !isLoopback(new URL(issuer))) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `${WHAT} at ${where} has a plain http ${name} (${describeUrl(url)}), and the issuer is not on this machine: nothing was sent; the credentials go over https only`,
    );
  }
  return url.href;
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
}
