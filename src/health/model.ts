import type { CredentialState } from '../core/token-engine.js';
import type { AgentSummary } from '../platforms/insights-hub-agent/lifecycle.js';

/**
 * The health of one credential (one config node of this package), as the
 * admin route, the editor's sidebar, the events node and the metrics show
 * it: derived here, without I/O, from what the engine, the connection and
 * the agent life cycle last said, at a time the caller gives. No token,
 * secret, key, IAT or registration access token is ever an input.
 */
export type HealthState = 'ok' | 'renewing' | 'backing-off' | 'failing' | 'locked-out' | 'not-configured';

export const HEALTH_STATES: readonly HealthState[] = ['ok', 'renewing', 'backing-off', 'failing', 'locked-out', 'not-configured'];

export interface HealthCounts {
  /** Token requests sent (all, renewals included). */
  tokenRequests: number;
  /** Of those, made while a usable token was still held. */
  renewals: number;
  /** Failed token requests. */
  failures: number;
  /** New tokens after an API's 401. */
  relogins: number;
  /** Requests through the connection (authenticated request, agent actions). */
  apiRequests: number;
  /** 429 answers waited out. */
  rateLimitWaits: number;
}

export const COUNT_NAMES: readonly (keyof HealthCounts)[] = ['tokenRequests', 'renewals', 'failures', 'relogins', 'apiRequests', 'rateLimitWaits'];

export function zeroCounts(): HealthCounts {
  return { tokenRequests: 0, renewals: 0, failures: 0, relogins: 0, apiRequests: 0, rateLimitWaits: 0 };
}

export interface Failure {
  at: string;
  code: string;
  /** Redacted of every secret of the config node. */
  message: string;
}

export interface AgentHealth {
  clientId: string;
  onboarded: boolean;
  profile: 'SHARED_SECRET' | 'RSA_3072';
  clientSecretExpiresAt?: string;
  rotateAt?: string;
  lastRotationAt?: string;
  lastRotationFailure?: Failure;
  registrationsKept: number;
  store: { kind: 'file' | 'redis'; where: string };
  lockHolder?: string;
  adoption?: { from: 'sdk-state-file'; at: string; note: string };
}

/** The JSON of GET iiot-auth/health (see the contract in docs/health.md). */
export interface HealthEntry {
  id: string;
  type: string;
  platform: string;
  platformLabel: string;
  name: string;
  state: HealthState;
  stateText: string;
  tokenExpiresAt?: string;
  renewAt?: string;
  retryAt?: string;
  lastSuccessAt?: string;
  lastFailure?: Failure;
  counts: HealthCounts;
  agent?: AgentHealth;
  actions: { renew: boolean; rotate: boolean };
}

/** A failure as the model keeps it: epoch ms, code, and the message redacted already. */
export interface FailureInput {
  at: number;
  code: string;
  message: string;
}

/** Everything the model is derived from. */
export interface HealthInputs {
  id: string;
  type: string;
  platform: string;
  platformLabel: string;
  name: string;
  /** The config node could not start: its error (message redacted). */
  configError?: { code: string; message: string } | undefined;
  /** The engine's snapshot of the credential; absent when not configured. */
  credential?: CredentialState | undefined;
  /** The config node has stopped: no action is accepted. */
  closed?: boolean;
  lastSuccessAt?: number | undefined;
  lastFailure?: FailureInput | undefined;
  counts: HealthCounts;
  /** An agent's summary, with its last rotation failure redacted. */
  agent?: (Omit<AgentSummary, 'lastRotationFailure'> & { lastRotationFailure?: FailureInput }) | undefined;
  /** Codes that mean the platform refuses these credentials for good. */
  lockedOutCodes: ReadonlySet<string>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The state and the line that says why. */
export function deriveState(inputs: HealthInputs, now: number): { state: HealthState; stateText: string } {
  const { configError, credential, lastFailure } = inputs;
  if (configError) return { state: 'not-configured', stateText: `not configured: ${configError.code}: ${configError.message}` };
  const cred = credential ?? { state: 'empty', failures: 0 };
  const usable = cred.state === 'valid' || cred.state === 'renewing';
  if (cred.state === 'renewing' || cred.state === 'fetching') {
    return { state: 'renewing', stateText: usable ? 'renewing the token (the current one is still valid)' : 'requesting a token' };
  }
  // The engine counts failures in a row until a token request succeeds: the last one failed.
  if (cred.failures > 0) {
    const code = cred.lastErrorCode ?? lastFailure?.code ?? 'HTTP_FAILED';
    const retry = cred.retryAt !== undefined ? ` (retry at ${iso(cred.retryAt)})` : ' (retried with the next message)';
    if (inputs.lockedOutCodes.has(code)) {
      return { state: 'locked-out', stateText: `the platform refuses the credentials: ${code}; fix them and deploy` };
    }
    if (usable) {
      return {
        state: 'backing-off',
        stateText: `token renewal failing: ${code}${retry}; the token stays valid until ${cred.expiresAt !== undefined ? iso(cred.expiresAt) : 'it expires'}`,
      };
    }
    return { state: 'failing', stateText: `token endpoint failing: ${code}${retry}` };
  }
  if (usable && cred.expiresAt !== undefined) return { state: 'ok', stateText: `token valid until ${iso(cred.expiresAt)}` };
  if (cred.expiresAt !== undefined && cred.expiresAt <= now) return { state: 'ok', stateText: 'token expired; a new one is requested with the next message' };
  return { state: 'ok', stateText: 'no token yet: one is requested with the first message' };
}

export function deriveEntry(inputs: HealthInputs, now: number): HealthEntry {
  const { state, stateText } = deriveState(inputs, now);
  const cred = inputs.credential;
  const entry: HealthEntry = {
    id: inputs.id,
    type: inputs.type,
    platform: inputs.platform,
    platformLabel: inputs.platformLabel,
    name: inputs.name,
    state,
    stateText,
    counts: { ...inputs.counts },
    actions: { renew: false, rotate: false },
  };
  if (cred?.expiresAt !== undefined) entry.tokenExpiresAt = iso(cred.expiresAt);
  if (cred?.renewAt !== undefined) entry.renewAt = iso(cred.renewAt);
  if (cred?.retryAt !== undefined) entry.retryAt = iso(cred.retryAt);
  if (inputs.lastSuccessAt !== undefined) entry.lastSuccessAt = iso(inputs.lastSuccessAt);
  if (inputs.lastFailure) entry.lastFailure = failureOf(inputs.lastFailure);
  if (inputs.agent) entry.agent = agentOf(inputs.agent);
  const open = !inputs.configError && !inputs.closed && !!cred;
  entry.actions = { renew: open, rotate: open && !!inputs.agent?.rotationPossible };
  return entry;
}

function failureOf(failure: FailureInput): Failure {
  return { at: iso(failure.at), code: failure.code, message: failure.message };
}

function agentOf(agent: NonNullable<HealthInputs['agent']>): AgentHealth {
  const health: AgentHealth = {
    clientId: agent.clientId,
    onboarded: agent.onboarded,
    profile: agent.profile,
    registrationsKept: agent.registrationsKept,
    store: { kind: agent.store.kind, where: agent.store.where },
  };
  if (agent.clientSecretExpiresAt !== undefined) health.clientSecretExpiresAt = iso(agent.clientSecretExpiresAt);
  if (agent.rotateAt !== undefined) health.rotateAt = iso(agent.rotateAt);
  if (agent.lastRotationAt !== undefined) health.lastRotationAt = iso(agent.lastRotationAt);
  if (agent.lastRotationFailure) health.lastRotationFailure = failureOf(agent.lastRotationFailure);
  if (agent.adoption) health.adoption = { ...agent.adoption };
  return health;
}

/** The part of an entry whose change is published at once (everything but the counts). */
export function publishedView(entry: HealthEntry): string {
  const { counts: _counts, ...view } = entry;
  return JSON.stringify(view);
}

/** The order of GET iiot-auth/health: platform label, then name, then id. */
export function compareEntries(a: HealthEntry, b: HealthEntry): number {
  return a.platformLabel.localeCompare(b.platformLabel) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
}
