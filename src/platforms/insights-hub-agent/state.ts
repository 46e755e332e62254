import { createHash } from 'node:crypto';
import type { IiotAuthError } from '../../core/errors.js';
import { recordError, type RecordLease, type RecordStore, type RecordVersion } from '../../core/record-store.js';
import { AgentErrorCode } from './errors.js';

/**
 * The durable state of an Insights Hub agent: the credentials the platform
 * shows once, kept as one record per agent (keyed by its client id) in a
 * record store (a file per agent by default, or Redis), never in the flow
 * files. Registrations are kept newest first, so a rotation whose answer was
 * lost can be retried with an older registration access token.
 */
export const STATE_FORMAT = 1;
/** How many registrations are kept (the official SDK keeps five). */
export const KEPT_REGISTRATIONS = 5;

export type SecurityProfile = 'SHARED_SECRET' | 'RSA_3072';

export interface AgentRegistration {
  clientId: string;
  /** SHARED_SECRET only. */
  clientSecret?: string;
  /** Epoch seconds. */
  clientSecretExpiresAt: number;
  registrationAccessToken: string;
  registrationClientUri: string;
  tokenEndpointAuthMethod: string;
  /** RSA_3072: the PKCS#8 PEM private key whose public half this registration carries. */
  privateKey?: string;
  keyId?: string;
  receivedAt: string;
  /** True once these credentials produced an access token (the platform then forgets older ones). */
  confirmed: boolean;
  /**
   * Set while too few of the store's replicas are known to hold this
   * registration (Redis with `minReplicas`): it is not used for a token or a
   * rotation yet, unless every other registration is refused.
   */
  awaitingReplicas?: true;
}

/** An RSA key sent to the platform (or about to be) before its registration answer is stored. */
export interface PendingKey {
  privateKey: string;
  keyId: string;
  createdAt: string;
  purpose: 'onboard' | 'rotate';
}

export interface AgentState {
  format: typeof STATE_FORMAT;
  clientId: string;
  tenant: string;
  baseUrl: string;
  profile: SecurityProfile;
  /** A digest of the boarding configuration's IAT: a new configuration means a new onboarding. */
  boardingConfigId: string;
  /** Set just before the onboarding request is sent, cleared when its answer is stored. */
  onboardingStartedAt?: string;
  pendingKey?: PendingKey;
  /** Newest first. */
  registrations: AgentRegistration[];
  lastRotationAt?: string;
  /** Set when the registration was adopted from an SDK state file (adoption.ts). */
  adoptedAt?: string;
  /** Set when this package offboarded the agent: its credentials no longer work. */
  offboardedAt?: string;
  updatedAt: string;
}

/**
 * The fields of the state that are secret: sealed at rest when the store
 * encrypts (everything else stays readable, for the health view and tools).
 * The IAT is never stored (only its digest, boardingConfigId).
 */
export const AGENT_SECRET_FIELDS: readonly string[] = Object.freeze([
  'registrations.*.clientSecret',
  'registrations.*.registrationAccessToken',
  'registrations.*.privateKey',
  'pendingKey.privateKey',
]);

/** What tells two registrations apart (the platform issues a new registration access token or key each time). */
export function registrationId(registration: AgentRegistration): string {
  return `${registration.receivedAt}|${registration.registrationAccessToken}|${registration.keyId ?? ''}`;
}

/** A state as read, with the version a write must name. */
export interface VersionedState {
  state: AgentState;
  version: RecordVersion;
}

/**
 * A short digest of a secret, never the secret itself: what identifies a
 * boarding configuration (by its IAT), and what stands for a key or a
 * registration access token in a credential's fingerprint.
 */
export function secretDigest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 32);
}

/** The digest that identifies a boarding configuration: a new IAT means a new onboarding. */
export function boardingConfigId(iat: string): string {
  return secretDigest(iat);
}

/** The agent's state in the record store, checked; undefined when there is none. */
export async function readAgentState(records: RecordStore, clientId: string): Promise<VersionedState | undefined> {
  const stored = await records.read(clientId);
  return stored ? { state: checkState(stored.value, `the stored state of ${clientId} in ${records.where}`, clientId), version: stored.version } : undefined;
}

/** Writes the state (its newest registrations only) durably if the stored one is still at `expected` (see RecordStore.write); resolves with what was written. */
export async function writeAgentState(
  records: RecordStore,
  state: AgentState,
  expected: RecordVersion | undefined,
  lease?: RecordLease,
): Promise<VersionedState> {
  const next: AgentState = { ...state, registrations: state.registrations.slice(0, KEPT_REGISTRATIONS), updatedAt: new Date().toISOString() };
  const version = await records.write(state.clientId, next as unknown as Record<string, unknown>, expected, lease);
  return { state: next, version };
}

function stateError(message: string): IiotAuthError {
  return recordError(AgentErrorCode.AGENT_STATE_ERROR, message);
}

function checkState(value: unknown, where: string, clientId: string): AgentState {
  const state = value as Partial<AgentState> | null;
  if (!state || typeof state !== 'object') throw stateError(`${where} is not an object: restore it from a backup`);
  if (state.format !== STATE_FORMAT) {
    throw stateError(
      `${where} has format ${String(state.format)}, this version reads format ${STATE_FORMAT}: update the package, or restore the matching version`,
    );
  }
  if (state.clientId !== clientId) throw stateError(`${where} belongs to another agent (${String(state.clientId).slice(0, 60)})`);
  if (!Array.isArray(state.registrations)) throw stateError(`${where} lacks its registrations: restore it from a backup`);
  state.registrations.forEach((registration, i) => {
    const problem = registrationProblem(registration) ?? foreignUri(registration, state.baseUrl);
    if (problem) {
      throw stateError(
        `${where} is damaged: registration ${i + 1} ${problem}; restore it from a backup (it is never overwritten while damaged), or move it away, offboard the agent and onboard it again`,
      );
    }
  });
  return state as AgentState;
}

/** A registration URI off the agent's platform: its registration access token would go there. */
function foreignUri(registration: AgentRegistration, baseUrl: unknown): string | undefined {
  if (!registration.registrationClientUri || typeof baseUrl !== 'string') return undefined;
  try {
    return new URL(registration.registrationClientUri).origin === new URL(baseUrl).origin
      ? undefined
      : 'has a registration URI on another origin than the platform';
  } catch {
    return 'has a registration URI that is not a URL';
  }
}

/** What makes a stored registration unusable, or undefined when it is usable. */
function registrationProblem(value: unknown): string | undefined {
  const r = value as Partial<AgentRegistration> | null;
  if (!r || typeof r !== 'object') return 'is not an object';
  const text = (v: unknown) => typeof v === 'string';
  if (!text(r.clientId) || !r.clientId) return 'has no client id';
  if (typeof r.clientSecretExpiresAt !== 'number' || Number.isNaN(r.clientSecretExpiresAt)) return 'has no valid client_secret_expires_at';
  if (!text(r.registrationAccessToken) || !text(r.registrationClientUri)) return 'has no registration access token or URI';
  if (!text(r.receivedAt) || Number.isNaN(Date.parse(r.receivedAt))) return 'has no valid receivedAt';
  if (r.privateKey !== undefined && (!text(r.privateKey) || !r.privateKey)) return 'has an unusable private key';
  if (r.clientSecret !== undefined && (!text(r.clientSecret) || !r.clientSecret)) return 'has an unusable client secret';
  if (!r.privateKey && !r.clientSecret) return 'has neither a client secret nor a private key';
  return undefined;
}
