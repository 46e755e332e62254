import { createHash, createPrivateKey, type KeyObject, randomUUID, X509Certificate } from 'node:crypto';
import { SignJWT } from 'jose';
import { ErrorCode, IiotAuthError } from '../core/errors.js';

/**
 * How the client proves who it is at the token endpoint: the methods of
 * RFC 6749 2.3.1, OpenID Connect Core 9 (with RFC 7523's JWT assertions) and
 * RFC 8705 (its TLS certificate). Each adds its part to the token request's
 * form and headers; the grant does not matter here.
 */
export const CLIENT_AUTH_METHODS = ['body', 'basic', 'client_secret_jwt', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'auto'] as const;
export type ClientAuthSetting = (typeof CLIENT_AUTH_METHODS)[number];
export type ClientAuthMethod = Exclude<ClientAuthSetting, 'auto'>;

/** The metadata names (RFC 8414 `token_endpoint_auth_methods_supported`) of the node's settings. */
export const METADATA_NAME: Readonly<Record<ClientAuthMethod, string>> = {
  body: 'client_secret_post',
  basic: 'client_secret_basic',
  client_secret_jwt: 'client_secret_jwt',
  private_key_jwt: 'private_key_jwt',
  tls_client_auth: 'tls_client_auth',
  self_signed_tls_client_auth: 'self_signed_tls_client_auth',
};

/** Which credential each method needs besides the client id. */
export function needsSecret(method: ClientAuthSetting): boolean {
  return method === 'body' || method === 'basic' || method === 'client_secret_jwt';
}
export function usesTls(method: ClientAuthSetting): boolean {
  return method === 'tls_client_auth' || method === 'self_signed_tls_client_auth';
}

export const SIGNING_ALGS = ['RS256', 'PS256', 'ES256', 'ES384', 'ES512'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/** A client's private key for private_key_jwt, read once at deploy. */
export interface SigningKey {
  key: KeyObject;
  /** The algorithms the key can sign with. */
  algs: readonly SigningAlg[];
  /** The one taken when neither the config node nor the server says: RS256 for RSA, the curve's for EC. */
  default: SigningAlg;
  /** `x5t#S256` of the certificate pasted with the key (RFC 7515 4.1.8), for servers that find the key by it (Microsoft Entra ID). */
  thumbprint?: string;
}

/**
 * Reads the pasted PEM: a private key (PKCS#8, PKCS#1 or SEC 1), optionally
 * followed by its certificate. The key's own words are never quoted.
 */
export function readSigningKey(pem: string): SigningKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'the private key is not an unencrypted PEM private key (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY): paste the key, optionally followed by its certificate',
    );
  }
  const algs = algsOf(key);
  const certificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!certificate) return { key, algs, default: algs[0] as SigningAlg };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificate);
  } catch {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, 'the certificate pasted after the private key cannot be read: paste it in PEM form, or leave it out');
  }
  if (!cert.checkPrivateKey(key)) {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, "the certificate pasted after the private key is not that key's certificate: paste the matching pair");
  }
  return { key, algs, default: algs[0] as SigningAlg, thumbprint: createHash('sha256').update(cert.raw).digest('base64url') };
}

function algsOf(key: KeyObject): readonly SigningAlg[] {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      throw new IiotAuthError(ErrorCode.CONFIG_INVALID, 'the RSA private key is shorter than 2048 bits: make a longer one');
    }
    return ['RS256', 'PS256'];
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const alg = ({ prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' } as const)[curve as 'prime256v1'];
    if (alg) return [alg];
  }
  throw new IiotAuthError(ErrorCode.CONFIG_INVALID, 'the private key must be RSA (2048 bits or more) or EC on P-256, P-384 or P-521');
}

/**
 * The algorithm to sign with: the configured one (which the key must
 * support), else the key's default unless the server lists others only
 * (RFC 8414 `token_endpoint_auth_signing_alg_values_supported`).
 */
export function chooseAlg(key: SigningKey, configured: string, serverAlgs: readonly string[]): SigningAlg {
  if (configured) {
    if (!key.algs.includes(configured as SigningAlg)) {
      throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `the signing algorithm ${configured} does not fit the key: choose ${key.algs.join(' or ')}`);
    }
    return configured as SigningAlg;
  }
  return key.algs.find((alg) => serverAlgs.includes(alg)) ?? key.default;
}

export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
  signingKey?: SigningKey | undefined;
  /** `kid` for the assertion's header; empty: the certificate's thumbprint, or none. */
  keyId: string;
  signingAlg: string;
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** An assertion is good for this long: one request (RFC 7523 3 wants an exp; shorter is safer against replay). */
const ASSERTION_LIFETIME_S = 60;

/**
 * Adds the client authentication to a token request. `audience` is the
 * token endpoint, as OpenID Connect Core 9 says the aud SHOULD be and
 * RFC 7523 3 allows (Microsoft Entra ID and Keycloak accept it).
 */
export async function authenticate(
  method: ClientAuthMethod,
  client: ClientCredentials,
  audience: string,
  form: URLSearchParams,
  headers: Record<string, string>,
  serverAlgs: readonly string[] = [],
): Promise<void> {
  switch (method) {
    case 'basic': {
      const [id, secret] = basicPair(client);
      headers.authorization = `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
      return;
    }
    case 'body':
      form.set('client_id', client.clientId);
      form.set('client_secret', client.clientSecret);
      return;
    case 'client_secret_jwt':
      form.set('client_id', client.clientId);
      form.set('client_assertion_type', ASSERTION_TYPE);
      form.set('client_assertion', await assertion(client, audience, 'HS256', new TextEncoder().encode(client.clientSecret), ''));
      return;
    case 'private_key_jwt': {
      const key = client.signingKey;
      if (!key) throw new IiotAuthError(ErrorCode.CREDENTIALS_MISSING, 'the OAuth 2.0 config lacks the private key: open the config node and paste it');
      const alg = chooseAlg(key, client.signingAlg, serverAlgs);
      form.set('client_id', client.clientId);
      form.set('client_assertion_type', ASSERTION_TYPE);
      form.set('client_assertion', await assertion(client, audience, alg, key.key, client.keyId, key.thumbprint));
      return;
    }
    case 'tls_client_auth':
    case 'self_signed_tls_client_auth':
      // RFC 8705 2: the TLS client certificate authenticates; the body names the client.
      form.set('client_id', client.clientId);
      return;
  }
}

/** `id:secret` as HTTP Basic carries them: each form-encoded first (RFC 6749 2.3.1). */
export function basicPair(client: Pick<ClientCredentials, 'clientId' | 'clientSecret'>): [string, string] {
  const encode = (value: string) => new URLSearchParams({ v: value }).toString().slice(2);
  return [encode(client.clientId), encode(client.clientSecret)];
}

/** A client assertion (RFC 7523 3): iss and sub the client id, a unique jti, a short life. */
function assertion(client: ClientCredentials, audience: string, alg: string, key: KeyObject | Uint8Array, kid: string, thumbprint?: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}), ...(thumbprint ? { 'x5t#S256': thumbprint } : {}) })
    .setIssuer(client.clientId)
    .setSubject(client.clientId)
    .setAudience(audience)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime(`${ASSERTION_LIFETIME_S}s`)
    .sign(key);
}

/**
 * The method "auto" picks from what the server lists (RFC 8414; absent
 * means client_secret_basic) and what the node has: a private key first,
 * then a secret over HTTP Basic, in the body, as an assertion.
 */
export function pickMethod(serverMethods: readonly string[], client: Pick<ClientCredentials, 'clientSecret' | 'signingKey'>): ClientAuthMethod {
  const candidates: ClientAuthMethod[] = [
    ...(client.signingKey ? (['private_key_jwt'] as const) : []),
    ...(client.clientSecret ? (['basic', 'body', 'client_secret_jwt'] as const) : []),
  ];
  const method = candidates.find((m) => serverMethods.includes(METADATA_NAME[m]));
  if (!method) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the server takes none of the client authentications this config node has credentials for (it lists ${serverMethods.join(', ') || 'none'}): choose the method in the config node and fill in its credentials`,
    );
  }
  return method;
}
