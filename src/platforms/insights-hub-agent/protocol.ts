import { createPrivateKey, createPublicKey, generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import type { AgentRegistration, SecurityProfile } from './state.js';
import { ErrorCode, IiotAuthError } from '../../core/errors.js';
import { header, type HttpRequest, type HttpResponse } from '../../core/http/index.js';
import type { Token } from '../../core/token.js';
import { checkBaseUrl } from '../../core/url.js';
import { expiryFrom } from '../../core/lifetime.js';
import { accessTokenOf, jsonObject, jwtClaim, requiredString, tokenEndpointError } from '../response.js';
import { AgentErrorCode } from './errors.js';

/**
 * Insights Hub Agent Management, the agent's side (docs/protocols.md, Insights Hub agents): the
 * boarding configuration, onboarding, key rotation, the client assertion and
 * the agent token. Request builders and response validators only; the order
 * of steps lives in lifecycle.ts, the durable state in
 * state.ts and record.ts.
 */

export interface BoardingConfiguration {
  baseUrl: string;
  iat: string;
  profiles: SecurityProfile[];
  clientId: string;
  tenant: string;
  /** When the IAT expires, epoch ms (from `expiration`, else the IAT's exp). */
  expiresAt?: number;
}

const AGENT_API = '/api/agentmanagement/v3';
/** As the official SDK sends it (docs/protocols.md): a JSON subtype in the answer cannot cause a 406. */
const ACCEPT = '*/*';
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Agent tokens last an hour; used only when a response carries no expires_in. */
export const DEFAULT_TOKEN_LIFETIME_S = 3600;
/** Beyond this, a refused assertion is blamed on this machine's clock. */
const CLOCK_SKEW_LIMIT_MS = 30_000;

/** Why a boarding configuration was refused, for the editor to say in the user's language (src/nodes/insights-hub-agent-check.ts). */
export type BoardingProblem = 'required' | 'json' | 'content' | 'field' | 'url';

export class BoardingConfigurationError extends IiotAuthError {
  constructor(
    readonly problem: BoardingProblem,
    message: string,
    /** The missing field, for 'field'. */
    readonly field?: string,
  ) {
    super(problem === 'required' ? ErrorCode.CREDENTIALS_MISSING : ErrorCode.CONFIG_INVALID, message);
  }
}

/** Reads the boarding configuration JSON the user pasted; errors never quote it (it holds the IAT). */
export function parseBoardingConfiguration(text: string): BoardingConfiguration {
  const invalid = (problem: BoardingProblem, what: string, field?: string) =>
    new BoardingConfigurationError(
      problem,
      `the boarding configuration ${what}: paste the whole JSON downloaded from Insights Hub (Asset Manager > the agent > Onboarding key), or an SDK state file (.mc/<client id>.json) whole`,
      field,
    );
  if (!text.trim()) {
    throw new BoardingConfigurationError(
      'required',
      'the Insights Hub agent config lacks the boarding configuration: paste the JSON downloaded from Insights Hub (Asset Manager > the agent > Onboarding key), or fetch it with the "get boarding configuration" action',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid('json', 'is not valid JSON');
  }
  const content = (parsed as { content?: Record<string, unknown> } | null)?.content;
  if (!content || typeof content !== 'object') throw invalid('content', 'has no "content"');
  for (const field of ['baseUrl', 'iat', 'clientId', 'tenant'] as const) {
    if (typeof content[field] !== 'string' || !content[field]) throw invalid('field', `lacks "content.${field}"`, `content.${field}`);
  }
  const profiles = Array.isArray(content.clientCredentialProfile) ? content.clientCredentialProfile.filter(isProfile) : [];
  const expiration = Date.parse(String((parsed as { expiration?: unknown }).expiration ?? ''));
  const iatExp = jwtClaim(content.iat as string, 'exp');
  let baseUrl: string;
  try {
    baseUrl = checkBaseUrl(content.baseUrl as string, "the boarding configuration's baseUrl");
  } catch (err) {
    throw new BoardingConfigurationError('url', (err as Error).message);
  }
  const config: BoardingConfiguration = {
    baseUrl,
    iat: content.iat as string,
    profiles,
    clientId: content.clientId as string,
    tenant: content.tenant as string,
  };
  if (!Number.isNaN(expiration)) config.expiresAt = expiration;
  else if (typeof iatExp === 'number') config.expiresAt = iatExp * 1000;
  return config;
}

function isProfile(value: unknown): value is SecurityProfile {
  return value === 'SHARED_SECRET' || value === 'RSA_3072';
}

// ---------------------------------------------------------------- keys

export interface AgentKey {
  /** PKCS#8 PEM. */
  privateKey: string;
  keyId: string;
}

/** A new 3072-bit RSA key for RSA_3072 onboarding or rotation. */
export async function generateAgentKey(): Promise<AgentKey> {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 3072, publicExponent: 0x10001 });
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), keyId: randomUUID() };
}

/** Reads a user's PEM key, PKCS#1 ("BEGIN RSA PRIVATE KEY") or PKCS#8 ("BEGIN PRIVATE KEY"), and checks it is RSA 3072. */
export function importAgentKey(pem: string): AgentKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem.trim());
  } catch {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'the private key is not a PEM private key: paste a PKCS#1 ("BEGIN RSA PRIVATE KEY") or PKCS#8 ("BEGIN PRIVATE KEY") key, or leave it empty to generate one',
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType !== 'rsa' || bits !== 3072) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the private key is ${key.asymmetricKeyType ?? 'unknown'}${bits ? ` ${bits}-bit` : ''}: RSA_3072 needs a 3072-bit RSA key (openssl genrsa 3072), or leave it empty to generate one`,
    );
  }
  return { privateKey: key.export({ type: 'pkcs8', format: 'pem' }).toString(), keyId: randomUUID() };
}

function publicJwk(key: AgentKey): Record<string, string> {
  const jwk = createPublicKey(key.privateKey).export({ format: 'jwk' }) as { kty: string; n: string; e: string };
  return { kty: jwk.kty, e: jwk.e, n: jwk.n, kid: key.keyId };
}

// ---------------------------------------------------------------- onboarding and rotation

export function buildRegisterRequest(config: BoardingConfiguration, profile: SecurityProfile, key?: AgentKey): HttpRequest {
  // SHARED_SECRET: an empty object, as the official SDK sends it (docs/protocols.md); the IAT names the agent.
  const body = profile === 'RSA_3072' ? { jwks: { keys: [publicJwk(requireKey(key))] } } : {};
  return {
    method: 'POST',
    url: `${config.baseUrl}${AGENT_API}/register`,
    headers: { authorization: `Bearer ${config.iat}`, 'content-type': 'application/json', accept: ACCEPT },
    body: JSON.stringify(body),
    retry: false,
    carriesSecret: { what: 'Insights Hub agent registration' },
    maxResponseBytes: 1024 * 1024,
  };
}

export function buildRotateRequest(registration: AgentRegistration, profile: SecurityProfile, key?: AgentKey): HttpRequest {
  const body: Record<string, unknown> = { client_id: registration.clientId };
  if (profile === 'RSA_3072') body.jwks = { keys: [publicJwk(requireKey(key))] };
  return {
    method: 'PUT',
    url: registration.registrationClientUri,
    headers: { authorization: `Bearer ${registration.registrationAccessToken}`, 'content-type': 'application/json', accept: ACCEPT },
    body: JSON.stringify(body),
    retry: false,
    carriesSecret: { what: 'Insights Hub agent key rotation' },
    maxResponseBytes: 1024 * 1024,
  };
}

/** The registration in a 201 (onboarding) or 2xx (rotation) answer. */
export function readRegistrationResponse(
  res: HttpResponse,
  context: { action: 'onboard' | 'rotate'; config?: BoardingConfiguration; baseUrl?: string; profile: SecurityProfile; key?: AgentKey; now?: number },
): AgentRegistration {
  const ok = context.action === 'onboard' ? res.statusCode === 201 || res.statusCode === 200 : res.statusCode >= 200 && res.statusCode < 300;
  if (!ok) throw registrationError(res, context.action, context.config, context.now ?? Date.now());
  const what = context.action === 'onboard' ? 'the onboarding answer' : 'the key rotation answer';
  const body = jsonObject(res, what);
  const registration: AgentRegistration = {
    clientId: requiredString(body, 'client_id', what),
    clientSecretExpiresAt: Number(body.client_secret_expires_at ?? 0),
    registrationAccessToken: requiredString(body, 'registration_access_token', what),
    registrationClientUri: sameOrigin(requiredString(body, 'registration_client_uri', what), context.config?.baseUrl ?? context.baseUrl, what),
    tokenEndpointAuthMethod: typeof body.token_endpoint_auth_method === 'string' ? body.token_endpoint_auth_method : '',
    receivedAt: new Date(context.now ?? Date.now()).toISOString(),
    confirmed: false,
  };
  if (context.profile === 'SHARED_SECRET') registration.clientSecret = requiredString(body, 'client_secret', what);
  else {
    const key = requireKey(context.key);
    registration.privateKey = key.privateKey;
    registration.keyId = key.keyId;
  }
  return registration;
}

function registrationError(res: HttpResponse, action: 'onboard' | 'rotate', config: BoardingConfiguration | undefined, now: number): IiotAuthError {
  const status = res.statusCode;
  if (action === 'onboard' && status === 401) {
    if (config?.expiresAt !== undefined && config.expiresAt <= now) {
      return new IiotAuthError(
        AgentErrorCode.IAT_EXPIRED,
        `the IAT expired on ${new Date(config.expiresAt).toISOString().slice(0, 10)}: download a new boarding configuration`,
        { statusCode: status },
      );
    }
    return new IiotAuthError(
      AgentErrorCode.IAT_USED,
      'the IAT was already used: this agent is onboarded elsewhere, or its state was lost; offboard it and download a new boarding configuration',
      { statusCode: status },
    );
  }
  if (action === 'rotate' && (status === 401 || status === 403)) {
    return new IiotAuthError(ErrorCode.AUTH_REJECTED, `the platform refused the registration access token (${status}) for key rotation`, {
      statusCode: status,
    });
  }
  if (status === 400) {
    return new IiotAuthError(
      ErrorCode.TOKEN_ENDPOINT_ERROR,
      `the platform refused the ${action === 'onboard' ? 'onboarding' : 'rotation'} request (400): check the security profile matches the agent's in Insights Hub`,
      { statusCode: status },
    );
  }
  return tokenEndpointError(res, `Insights Hub agent ${action === 'onboard' ? 'onboarding' : 'key rotation'}`, 'check the agent in Insights Hub');
}

/** The registration access token goes to registration_client_uri later: only ever on the platform's own origin. */
function sameOrigin(uri: string, baseUrl: string | undefined, what: string): string {
  let origin: string;
  try {
    origin = new URL(uri).origin;
  } catch {
    throw new IiotAuthError(ErrorCode.TOKEN_RESPONSE_INVALID, `${what} has a "registration_client_uri" that is not a URL`);
  }
  if (baseUrl !== undefined && origin !== new URL(baseUrl).origin) {
    throw new IiotAuthError(
      ErrorCode.TOKEN_RESPONSE_INVALID,
      `${what} has a "registration_client_uri" on another origin (${origin}) than the platform's (${new URL(baseUrl).origin}): refused, the registration access token goes nowhere else; check the boarding configuration's baseUrl`,
    );
  }
  return uri;
}

function requireKey(key: AgentKey | undefined): AgentKey {
  if (!key) throw new IiotAuthError(ErrorCode.CONFIG_INVALID, 'RSA_3072 needs a private key');
  return key;
}

// ---------------------------------------------------------------- agent token

/** The self-signed JWT: claims exactly as docs/protocols.md lists them; HS256 with the secret, RS256 with the key (the documentation's sample). */
export async function buildClientAssertion(registration: AgentRegistration, tenant: string, now: number = Date.now()): Promise<string> {
  try {
    return await signClientAssertion(registration, tenant, now);
  } catch (err) {
    if (err instanceof IiotAuthError) throw err;
    // jose or node:crypto refusing a stored value: the state is damaged; never pass their message on.
    throw new IiotAuthError(
      AgentErrorCode.AGENT_STATE_ERROR,
      `the stored registration of agent ${typeof registration.clientId === 'string' ? registration.clientId.slice(0, 60) : '(unknown)'} cannot sign a client assertion (${(err as Error)?.name ?? 'error'}): its client id, secret or key is damaged; restore the state file from a backup, or offboard the agent and onboard it again`,
    );
  }
}

async function signClientAssertion(registration: AgentRegistration, tenant: string, now: number): Promise<string> {
  const seconds = Math.floor(now / 1000);
  const jwt = new SignJWT({ schemas: ['urn:siemens:mindsphere:v1'], ten: tenant })
    .setIssuer(registration.clientId)
    .setSubject(registration.clientId)
    .setAudience(['southgate'])
    .setIssuedAt(seconds)
    .setNotBefore(seconds)
    .setExpirationTime(seconds + 3600)
    .setJti(randomUUID());
  if (registration.privateKey) {
    return jwt
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(registration.keyId ? { kid: registration.keyId } : {}) })
      .sign(createPrivateKey(registration.privateKey));
  }
  if (!registration.clientSecret)
    throw new IiotAuthError(AgentErrorCode.AGENT_STATE_ERROR, 'the stored registration has neither a client secret nor a private key');
  return jwt.setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(registration.clientSecret));
}

export function buildAgentTokenRequest(baseUrl: string, assertion: string): HttpRequest {
  return {
    method: 'POST',
    url: `${baseUrl}${AGENT_API}/oauth/token`,
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: ACCEPT },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: assertion }).toString(),
    retry: false,
    carriesSecret: { what: 'the Insights Hub agent token endpoint' },
    maxResponseBytes: 1024 * 1024,
  };
}

export function readAgentTokenResponse(res: HttpResponse, now: number, registration: AgentRegistration): Token {
  if (res.statusCode !== 200) {
    if (res.statusCode === 400 || res.statusCode === 401) {
      const serverDate = Date.parse(header(res.headers, 'date') ?? '');
      const skew = Number.isNaN(serverDate) ? 0 : now - serverDate;
      if (Math.abs(skew) > CLOCK_SKEW_LIMIT_MS) {
        return fail(
          AgentErrorCode.CLOCK_SKEW,
          `the platform rejected the client assertion: check this machine's clock (it is ${Math.round(skew / 1000)} s off the server's Date header)`,
          res.statusCode,
        );
      }
      if (registration.clientSecretExpiresAt > 0 && registration.clientSecretExpiresAt * 1000 <= now) {
        return fail(
          AgentErrorCode.SECRET_EXPIRED,
          `the client secret expired on ${new Date(registration.clientSecretExpiresAt * 1000).toISOString().slice(0, 10)} while the agent was offline: onboard again (offboard it and download a new boarding configuration)`,
          res.statusCode,
        );
      }
      return fail(ErrorCode.AUTH_REJECTED, `the platform rejected the agent's credentials (${res.statusCode})`, res.statusCode);
    }
    throw tokenEndpointError(res, 'the Insights Hub agent token endpoint', 'the agent credentials were refused');
  }
  const what = 'the agent token endpoint';
  const body = jsonObject(res, what);
  const accessToken = accessTokenOf(body, what);
  const expiresAt = expiryFrom(now, { expiresIn: body.expires_in, defaultS: DEFAULT_TOKEN_LIFETIME_S, what });
  return { type: 'bearer', value: accessToken, obtainedAt: now, expiresAt, headers: { authorization: `Bearer ${accessToken}` } };
}

function fail(code: ErrorCode, message: string, statusCode: number): never {
  throw new IiotAuthError(code, message, { statusCode });
}
