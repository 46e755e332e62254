import { createPublicKey } from 'node:crypto';
import { ErrorCode, IiotAuthError } from '../../core/errors.js';
import { AgentErrorCode } from './errors.js';
import { type AgentKey, type BoardingConfiguration, parseBoardingConfiguration } from './protocol.js';
import { type AgentRegistration, type AgentState, KEPT_REGISTRATIONS, type SecurityProfile } from './state.js';

/**
 * Adopting an agent that Siemens' SDK (@mindconnect/mindconnect-nodejs), or
 * node-red-contrib-mindconnect on top of it, has onboarded: its state file
 * `.mc/<client id>.json` (the SDK's IMindConnectConfiguration, docs/protocols.md
 * "The SDK's state file") holds the boarding configuration plus the last
 * registration and older ones. The registration is taken over as it is, so
 * the used IAT is never sent again. Parsing and the decisions only; the steps
 * (token check, store write, rotation) live in lifecycle.ts.
 */

/** The kid the SDK registers RSA keys under (SetupAgentCertificate, api/agent-auth.js). */
export const SDK_KEY_ID = 'mindconnect-key-1';

export interface SdkAdoption {
  clientId: string;
  /** The SDK's registrations, newest first: `response`, then `recovery` newest first. */
  registrations: AgentRegistration[];
  /** The public key the file shows as registered (only if the platform echoed `jwks`). */
  registeredKey?: { n: string; e: string; kid?: string };
}

export interface AgentConfiguration {
  boarding: BoardingConfiguration;
  /** Set when the text was an SDK state file rather than a boarding configuration. */
  adoption?: SdkAdoption;
}

/** An SDK state file has the registration fields beside `content`; a boarding configuration from Insights Hub has none. */
export function isSdkStateFile(parsed: unknown): boolean {
  return !!parsed && typeof parsed === 'object' && !Array.isArray(parsed) && ('response' in parsed || 'recovery' in parsed);
}

/**
 * Reads what was pasted into the agent config node: a boarding configuration,
 * or an SDK state file (told apart by its `response`). Errors never quote it.
 */
export function parseAgentConfiguration(text: string, profile: SecurityProfile, key: AgentKey | undefined, now: number = Date.now()): AgentConfiguration {
  const boarding = parseBoardingConfiguration(text);
  if (boarding.profiles.length > 0 && !boarding.profiles.includes(profile)) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the boarding configuration is for ${boarding.profiles.join(', ')}, but the node is set to ${profile}: choose the agent's security profile`,
    );
  }
  const parsed = JSON.parse(text) as Record<string, unknown>; // valid: parseBoardingConfiguration read it
  if (!isSdkStateFile(parsed)) return { boarding };
  return { boarding, adoption: readSdkState(parsed, boarding, profile, key, now) };
}

function invalid(what: string): IiotAuthError {
  return new IiotAuthError(
    ErrorCode.CONFIG_INVALID,
    `the SDK state file ${what}: paste the whole .mc/<client id>.json as the SDK (or node-red-contrib-mindconnect) last saved it, or the boarding configuration instead`,
  );
}

function readSdkState(
  parsed: Record<string, unknown>,
  boarding: BoardingConfiguration,
  profile: SecurityProfile,
  key: AgentKey | undefined,
  now: number,
): SdkAdoption {
  const response = parsed.response;
  if (!response || typeof response !== 'object' || Array.isArray(response)) {
    throw invalid(
      'has no "response" (the registration): the SDK has not onboarded this agent yet, so paste the boarding configuration and let this node onboard it',
    );
  }
  const recovery = parsed.recovery === undefined ? [] : parsed.recovery;
  if (!Array.isArray(recovery)) throw invalid('has a "recovery" that is not a list');
  if (profile === 'RSA_3072' && !key) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'an RSA_3072 agent from an SDK state file needs the private key the SDK used (the PEM given to SetupAgentCertificate; the state file does not hold it): paste it into the private key field',
    );
  }
  const registered = registeredKey(response as Record<string, unknown>);
  if (profile === 'RSA_3072' && key && registered) checkKeyMatches(key, registered);
  const keyId = registered?.kid ?? SDK_KEY_ID;
  // The SDK's recovery list is oldest first and may repeat the current response.
  const entries = [response, ...recovery.slice().reverse()] as unknown[];
  const registrations: AgentRegistration[] = [];
  entries.forEach((entry, i) => {
    const where = i === 0 ? '"response"' : `"recovery" entry ${recovery.length - i + 1}`;
    const registration = readRegistration(entry, where, boarding, profile, key, keyId, now - i);
    if (!registrations.some((r) => r.registrationAccessToken === registration.registrationAccessToken)) registrations.push(registration);
  });
  return {
    clientId: boarding.clientId,
    registrations: registrations.slice(0, KEPT_REGISTRATIONS),
    ...(registered ? { registeredKey: registered } : {}),
  };
}

function readRegistration(
  value: unknown,
  where: string,
  boarding: BoardingConfiguration,
  profile: SecurityProfile,
  key: AgentKey | undefined,
  keyId: string,
  receivedAt: number,
): AgentRegistration {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw invalid(`has a ${where} that is not an object`);
  const r = value as Record<string, unknown>;
  const text = (field: string): string => {
    if (typeof r[field] !== 'string' || !r[field]) throw invalid(`lacks ${where}.${field}`);
    return r[field] as string;
  };
  if (text('client_id') !== boarding.clientId) throw invalid(`has a ${where}.client_id that is not content.clientId: the file mixes two agents`);
  const expiresAt = Number(r.client_secret_expires_at);
  if (!Number.isFinite(expiresAt) || expiresAt <= 0) throw invalid(`lacks a numeric ${where}.client_secret_expires_at`);
  const uri = text('registration_client_uri');
  let origin: string;
  try {
    origin = new URL(uri).origin;
  } catch {
    throw invalid(`has a ${where}.registration_client_uri that is not a URL`);
  }
  // The registration access token goes there: only ever to the platform's own origin.
  if (origin !== new URL(boarding.baseUrl).origin) {
    throw invalid(`has a ${where}.registration_client_uri on another origin than content.baseUrl: refused, the registration access token goes nowhere else`);
  }
  const registration: AgentRegistration = {
    clientId: boarding.clientId,
    clientSecretExpiresAt: expiresAt,
    registrationAccessToken: text('registration_access_token'),
    registrationClientUri: uri,
    tokenEndpointAuthMethod: typeof r.token_endpoint_auth_method === 'string' ? r.token_endpoint_auth_method : '',
    // When the SDK received it is not in the file: the adoption's time, older entries a little earlier (the order is what counts).
    receivedAt: new Date(receivedAt).toISOString(),
    confirmed: false,
  };
  if (profile === 'SHARED_SECRET') {
    if (typeof r.client_secret !== 'string' || !r.client_secret) {
      throw invalid(`lacks ${where}.client_secret: a SHARED_SECRET registration has one (is the agent RSA_3072? then choose that profile and paste its key)`);
    }
    registration.clientSecret = r.client_secret;
  } else {
    if (key) registration.privateKey = key.privateKey;
    registration.keyId = keyId;
  }
  return registration;
}

/** The first key of `jwks`, when the platform's registration answer echoed it and the SDK saved it. */
function registeredKey(response: Record<string, unknown>): SdkAdoption['registeredKey'] {
  const keys = (response.jwks as { keys?: unknown } | undefined)?.keys;
  const first = Array.isArray(keys) ? (keys[0] as Record<string, unknown> | undefined) : undefined;
  if (!first || typeof first.n !== 'string' || typeof first.e !== 'string') return undefined;
  return { n: first.n, e: first.e, ...(typeof first.kid === 'string' && first.kid ? { kid: first.kid } : {}) };
}

/** The key in the key field must be the one whose public half the file shows as registered. */
export function checkKeyMatches(key: AgentKey, registered: { n: string; e: string }): void {
  const jwk = createPublicKey(key.privateKey).export({ format: 'jwk' }) as { n?: string; e?: string };
  if (jwk.n !== registered.n || jwk.e !== registered.e) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'the private key in the key field does not match the public key registered in the SDK state file (response.jwks): paste the key the SDK used (the PEM given to SetupAgentCertificate)',
    );
  }
}

// ---------------------------------------------------------------- which copy is newer

export type AdoptionDecision =
  /** Nothing usable in the store: take the file's registration. */
  | 'adopt'
  /** The store holds this registration already, or a newer one of the same boarding: use the store. */
  | 'use-store'
  /** The store holds a newer registration that did not come from this file (another boarding configuration): refuse. */
  | 'refuse';

/**
 * "Newer" is the later `client_secret_expires_at`: the platform issues every
 * registration of an agent with the same secret lifetime, so the later expiry
 * is the later registration (the file carries no issue time). A registration
 * whose access token the store knows is the same one.
 */
export function decideAdoption(stored: AgentState | undefined, adoption: SdkAdoption, boardingId: string): AdoptionDecision {
  const newest = stored?.registrations[0];
  if (!stored || !newest || stored.offboardedAt) return 'adopt';
  const file = adoption.registrations[0];
  const known = new Set(stored.registrations.map((r) => r.registrationAccessToken));
  if (adoption.registrations.some((r) => known.has(r.registrationAccessToken))) {
    // Adopted before; a file whose newest registration the store lacks is the SDK's own later rotation.
    return known.has(file.registrationAccessToken) || newest.clientSecretExpiresAt >= file.clientSecretExpiresAt ? 'use-store' : 'adopt';
  }
  if (newest.clientSecretExpiresAt < file.clientSecretExpiresAt) return 'adopt';
  // Same boarding: this store's own rotations since the adoption (the file's have aged out of the kept ones).
  return stored.boardingConfigId === boardingId && stored.adoptedAt ? 'use-store' : 'refuse';
}

export function newerInStoreError(stored: AgentState, adoption: SdkAdoption, where: string): IiotAuthError {
  const date = (s: number) => new Date(s * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return new IiotAuthError(
    AgentErrorCode.AGENT_STATE_ERROR,
    `adoption refused: ${where} already holds a newer registration of agent ${stored.clientId} (its secret expires ${date(stored.registrations[0].clientSecretExpiresAt)} UTC) than the SDK state file (${date(adoption.registrations[0].clientSecretExpiresAt)} UTC), so the file is an old copy and its credentials no longer count. Keep using the stored registration: paste the boarding configuration this Node-RED onboarded the agent with; or, if the SDK really holds the agent now, move the stored state aside and paste the SDK's current .mc/${stored.clientId}.json`,
  );
}

/** The platform refused the file's newest registration (a token, or a rotation with its RAT). */
export function adoptionRefusedError(adoption: SdkAdoption, profile: SecurityProfile, statusCode: number | undefined, keyChecked: boolean): IiotAuthError {
  const stale = `the SDK (or node-red-contrib-mindconnect) rotated the credentials again after this file was copied, so its own current .mc/${adoption.clientId}.json is newer: stop it, copy that file, paste it here and deploy (if the SDK's copy no longer works either, offboard the agent and onboard it with a new boarding configuration)`;
  const cause =
    profile === 'RSA_3072' && !keyChecked
      ? `either the private key in the key field is not the one the SDK used (paste the PEM given to SetupAgentCertificate), or ${stale}`
      : stale;
  return new IiotAuthError(
    ErrorCode.AUTH_REJECTED,
    `the platform refused the registration in the SDK state file of agent ${adoption.clientId}${statusCode ? ` (${statusCode})` : ''}: ${cause}`,
    {
      ...(statusCode ? { statusCode } : {}),
    },
  );
}

/** Every secret the file holds, for redaction. */
export function adoptionSecrets(adoption: SdkAdoption | undefined): string[] {
  return (adoption?.registrations ?? []).flatMap((r) => [r.clientSecret ?? '', r.registrationAccessToken]).filter(Boolean);
}
