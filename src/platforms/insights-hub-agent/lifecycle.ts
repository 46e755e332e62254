import { ErrorCode, IiotAuthError, isIiotAuthError } from '../../core/errors.js';
import type { HttpClient } from '../../core/http/index.js';
import { isRecordConflict, type KeyedMutex, type RecordLease, type RecordStore } from '../../core/record-store.js';
import type { Token, TokenProvider } from '../../core/token.js';
import { AgentErrorCode } from './errors.js';
import { DEFAULT_ROTATION, type RotationPolicy } from './declaration.js';
import {
  type AgentKey,
  type BoardingConfiguration,
  buildAgentTokenRequest,
  buildClientAssertion,
  buildRegisterRequest,
  buildRotateRequest,
  generateAgentKey,
  readAgentTokenResponse,
  readRegistrationResponse,
} from './protocol.js';
import { adoptionRefusedError, decideAdoption, newerInStoreError, type SdkAdoption } from './adoption.js';
import { AgentRecord, type Change } from './record.js';
import {
  type AgentRegistration,
  type AgentState,
  boardingConfigId,
  readAgentState,
  registrationId,
  STATE_FORMAT,
  type SecurityProfile,
  type VersionedState,
} from './state.js';

/**
 * The order of an agent's steps, so that no failure loses its credentials:
 * every new credential is saved before it is used, the previous registration
 * is kept until the new one has produced a token, and a rotation whose answer
 * was lost is retried with the stored registration access tokens, newest
 * first.
 *
 * Several Node-RED instances may share one agent through a shared store
 * (Redis): each takes tokens with the stored credentials; onboarding and
 * rotation take the agent's lock in the store, so one instance at a time
 * makes them, and the others pick the new registration up from the store.
 * Every write names the version it read; a refused write is re-read and
 * re-applied (record.ts), and credentials the platform issued are merged in,
 * never dropped. Where the store has replicas that may be promoted (Redis
 * Sentinel), new credentials are used only once enough of them acknowledged
 * the registration (see `acknowledged`).
 */
export interface AgentLifecycleOptions {
  store: RecordStore;
  mutex: KeyedMutex;
  boarding: BoardingConfiguration;
  profile: SecurityProfile;
  /** The user's RSA key for onboarding; without one, a key is generated and kept in the state. */
  userKey?: AgentKey;
  /** An SDK state file's registration: adopted instead of onboarding (the IAT in it is used up). */
  adoption?: SdkAdoption;
  now?: () => number;
  random?: () => number;
  /** When keys are rotated; the declaration's DEFAULT_ROTATION when absent. */
  rotation?: RotationPolicy;
  /** How long a crashed process's lock blocks the agent (ms; the file store takes at least 2000). */
  lockStaleMs?: number;
  /** How long onboarding or a requested rotation waits for another instance's (ms, default 30000). */
  lockWaitMs?: number;
  /** Where the agent's state was kept before: copied from there when `store` has none (moving between stores). */
  importFrom?: RecordStore;
  /** Called when the agent is closed (the config node stopped). */
  onClose?: () => Promise<void>;
  /** Called at each step: tests use it to crash the process between steps. */
  onStep?: (step: AgentStep) => void | Promise<void>;
}

export type AgentStep =
  | 'onboard:saved-intent'
  | 'onboard:answered'
  | 'onboard:saved'
  | 'rotate:saved-intent'
  | 'rotate:answered'
  | 'rotate:saved'
  | 'token:confirmed';

export interface AgentStatus {
  clientId: string;
  onboarded: boolean;
  profile: SecurityProfile;
  clientSecretExpiresAt?: string;
  lastRotationAt?: string;
  registrationsKept: number;
  rotationPossible: boolean;
  /** Set when the registration was adopted from an SDK state file: when, and who owns the agent now. */
  adoption?: { from: 'sdk-state-file'; at: string; note: string };
  /** Set while new credentials wait for the store's replicas (AGENT_STATE_UNREPLICATED): since when, and why. */
  waitingForReplicas?: ReplicaWait;
}

/** New credentials not used yet because too few of the store's replicas acknowledged them. */
export interface ReplicaWait {
  since: string;
  /** The last attempt's error: its code (AGENT_STATE_UNREPLICATED, or AGENT_STATE_ERROR when the store was unreachable) and message. */
  code: string;
  message: string;
}

/**
 * What a health view shows of an agent, read without I/O from the state the
 * life cycle last read or wrote: no secret in it. Times are epoch ms.
 */
export interface AgentSummary {
  clientId: string;
  onboarded: boolean;
  profile: SecurityProfile;
  clientSecretExpiresAt?: number;
  /** When the next rotation is due (the rotation policy's point, drawn once per agent). */
  rotateAt?: number;
  lastRotationAt?: number;
  /** The last rotation that failed, until one succeeds; `error` is not redacted yet. */
  lastRotationFailure?: { at: number; error: unknown };
  registrationsKept: number;
  rotationPossible: boolean;
  store: { kind: 'file' | 'redis'; where: string };
  adoption?: AgentStatus['adoption'];
  /** New credentials written but not used yet: too few replicas acknowledged them (and why). */
  waitingForReplicas?: ReplicaWait;
}

/** Rotations as they end, for a health view. */
export type AgentEvent = { kind: 'rotated' } | { kind: 'rotation-failed'; error: unknown };

export class AgentLifecycle implements TokenProvider {
  readonly baseUrl: string;
  private readonly now: () => number;
  /** The share of a secret's lifetime left when this agent rotates: drawn once, so the agent keeps its point. */
  private readonly rotationMargin: number;
  private readonly boardingId: string;
  private readonly record: AgentRecord;
  private replicaWait?: ReplicaWait | undefined;
  private readonly listeners = new Set<(event: AgentEvent) => void>();
  private lastRotationFailure?: { at: number; error: unknown } | undefined;
  /** The stored state as read for the health view before the agent's first operation (read only: no claim, no lock). */
  private glimpsed?: AgentState | undefined;
  /** The rotation a user asked for, while it runs: a second request joins it. */
  private requestedRotation?: Promise<AgentState> | undefined;

  constructor(private readonly options: AgentLifecycleOptions) {
    this.baseUrl = options.boarding.baseUrl;
    this.now = options.now ?? Date.now;
    const rotation = options.rotation ?? DEFAULT_ROTATION;
    this.rotationMargin = rotation.marginMin + rotation.marginSpread * (options.random ?? Math.random)();
    this.boardingId = boardingConfigId(options.boarding.iat);
    this.record = new AgentRecord({
      clientId: options.boarding.clientId,
      store: options.store,
      mutex: options.mutex,
      ...(options.importFrom ? { importFrom: options.importFrom } : {}),
      ...(options.lockStaleMs !== undefined ? { lockStaleMs: options.lockStaleMs } : {}),
      ...(options.lockWaitMs !== undefined ? { lockWaitMs: options.lockWaitMs } : {}),
    });
  }

  get clientId(): string {
    return this.options.boarding.clientId;
  }

  /** New credentials waiting for the store's replicas, and why; undefined when none wait. */
  get waitingForReplicas(): ReplicaWait | undefined {
    return this.replicaWait;
  }

  /** The engine's entry: onboards on first use, rotates when due, then gets a token. */
  async fetchToken(http: HttpClient): Promise<Token> {
    let state = await this.onboard(http).then((r) => r.state);
    if (this.record.awaitingReplicas(state)) {
      // New credentials wait for the replicas: acknowledged now, they are used; else the previous ones are.
      state = await this.record.exclusive(async () => this.acknowledged((await this.record.load())?.state ?? state));
    } else {
      this.replicaWait = undefined; // none wait (another instance may have had them acknowledged)
      if (this.rotationDue(state)) {
        try {
          state = await this.rotateIfDue(http);
        } catch (err) {
          // The current credentials still work: a failed rotation is retried
          // with the next token; a locked-out agent shows up as a token error.
          if (!isIiotAuthError(err) || (err.code === AgentErrorCode.AGENT_STATE_ERROR && !isRecordConflict(err))) throw err;
          state = (await this.record.shared(() => this.record.load()))?.state ?? state;
        }
      }
    }
    return this.tokenFrom(http, state);
  }

  /** Registers the agent with its IAT, unless this boarding configuration is onboarded already (by any instance). */
  onboard(http: HttpClient): Promise<{ state: AgentState; alreadyOnboarded: boolean }> {
    return this.record.exclusive(async () => {
      const onboarded = this.onboarded(await this.record.load());
      if (onboarded && !this.adoptionDue(onboarded)) return { state: onboarded, alreadyOnboarded: true };
      // A new RSA key takes seconds to make: made before the lock is taken, so the lock is held briefly.
      const spareKey = this.options.userKey || this.options.adoption ? undefined : await this.newKey();
      // Another instance may be onboarding right now: wait for its lock, then look again.
      const lease = await this.record.lease('onboarded');
      try {
        const current = await this.record.load();
        const done = this.onboarded(current);
        if (done && !this.adoptionDue(done)) return { state: done, alreadyOnboarded: true };
        // An SDK state file: its IAT is used up, so its registration is adopted, never registered again.
        if (this.options.adoption) return await this.adoptWith(http, current, lease, this.options.adoption);
        return await this.onboardWith(http, current, lease, spareKey);
      } finally {
        await lease.release();
      }
    });
  }

  /** Key rotation with the registration access token, trying stored ones newest first. */
  rotate(http: HttpClient): Promise<AgentState> {
    return this.record.exclusive(async () => {
      const key = await this.newKey();
      const lease = await this.record.lease('rotated');
      try {
        return await this.rotateWith(http, lease, key);
      } finally {
        await lease.release();
      }
    });
  }

  /** rotate(), joining the one already running for an earlier request: one rotation however often it is asked for at once. */
  rotateNow(http: HttpClient): Promise<AgentState> {
    this.requestedRotation ??= this.rotate(http).finally(() => {
      this.requestedRotation = undefined;
    });
    return this.requestedRotation;
  }

  /** Calls `listener` after each rotation; returns the function that stops it. */
  observe(listener: (event: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The automatic rotation: skipped while another instance holds the lock
   * (it is rotating: its result is read with the next token), and skipped
   * when the stored state, read under the lock, is no longer due.
   */
  private rotateIfDue(http: HttpClient): Promise<AgentState> {
    return this.record.exclusive(async () => {
      const lease = await this.record.tryLease();
      if (!lease) return (await this.requireOnboarded()).state;
      try {
        const current = await this.requireOnboarded();
        if (!this.rotationDue(current.state)) return current.state;
        return await this.rotateWith(http, lease, await this.newKey());
      } finally {
        await lease.release();
      }
    });
  }

  private async onboardWith(
    http: HttpClient,
    existing: VersionedState | undefined,
    lease: RecordLease,
    spareKey: AgentKey | undefined,
  ): Promise<{ state: AgentState; alreadyOnboarded: boolean }> {
    const { boarding, profile } = this.options;
    // A new boarding configuration (or none onboarded yet): onboard afresh.
    // An RSA key is saved before it is sent, so a lost answer can be recovered.
    const same = existing?.state.boardingConfigId === this.boardingId;
    const key =
      profile === 'RSA_3072' ? ((same ? existing.state.pendingKey : undefined) ?? this.options.userKey ?? spareKey ?? (await this.newKey())) : undefined;
    const intent = this.freshState({
      onboardingStartedAt: new Date(this.now()).toISOString(),
      ...(key ? { pendingKey: { ...key, createdAt: new Date(this.now()).toISOString(), purpose: 'onboard' as const } } : {}),
    });
    // Written only if nothing changed since it was read, and only while the lock is held.
    await this.record.write(intent, existing?.version, lease);
    await this.step('onboard:saved-intent');

    const res = await http.send(buildRegisterRequest(boarding, profile, key));
    await this.step('onboard:answered');
    let registration: AgentRegistration;
    try {
      registration = readRegistrationResponse(res, { action: 'onboard', config: boarding, profile, ...(key ? { key } : {}), now: this.now() });
    } catch (err) {
      // The IAT was used, perhaps by our own request whose answer was lost:
      // with RSA the key we saved is registered, so the agent can still get tokens.
      if (isIiotAuthError(err) && err.code === AgentErrorCode.IAT_USED && key) {
        const recovered = await this.recoverLostOnboarding(http, intent, key, lease);
        if (recovered) return { state: await this.acknowledged(recovered), alreadyOnboarded: false };
      }
      throw err;
    }
    const state = await this.saveRegistration(registration, lease, intent);
    await this.step('onboard:saved');
    return { state: await this.acknowledged(state), alreadyOnboarded: false };
  }

  /** True when an SDK state file holds a registration the store should take (see decideAdoption). */
  private adoptionDue(state: AgentState): boolean {
    return !!this.options.adoption && decideAdoption(state, this.options.adoption, this.boardingId) === 'adopt';
  }

  /**
   * Adopts an SDK state file's registration: checked with a token request
   * (a wrong RSA key or a registration the SDK has rotated away is refused
   * before anything is stored), written to the store, then rotated at once,
   * so that this Node-RED alone owns the agent. A secret past its expiry is
   * revived by that rotation (its RAT still works); refused, the store is
   * left without the dead registration, ready for a fresher file.
   */
  private async adoptWith(
    http: HttpClient,
    current: VersionedState | undefined,
    lease: RecordLease,
    adoption: SdkAdoption,
  ): Promise<{ state: AgentState; alreadyOnboarded: boolean }> {
    const { profile } = this.options;
    const decision = decideAdoption(current?.state, adoption, this.boardingId);
    if (current && decision === 'refuse') throw newerInStoreError(current.state, adoption, this.record.where);
    if (current && decision === 'use-store') return { state: current.state, alreadyOnboarded: true };
    const registrations = adoption.registrations.map((r) => ({ ...r }));
    const newest = registrations[0];
    const expired = newest.clientSecretExpiresAt * 1000 <= this.now();
    const refused = (err: unknown) =>
      isIiotAuthError(err) && (err.code === ErrorCode.AUTH_REJECTED || err.code === AgentErrorCode.SECRET_EXPIRED)
        ? adoptionRefusedError(adoption, profile, err.statusCode, !!adoption.registeredKey)
        : err;
    if (!expired) {
      try {
        await this.probe(http, newest, this.options.boarding);
      } catch (err) {
        throw refused(err);
      }
      newest.confirmed = true;
    }
    const kept = current?.state.boardingConfigId === this.boardingId && !current.state.offboardedAt ? current.state.registrations : [];
    const adopted = this.freshState({
      registrations: [...registrations, ...kept.filter((r) => !registrations.some((a) => a.registrationAccessToken === r.registrationAccessToken))],
      adoptedAt: new Date(this.now()).toISOString(),
    });
    await this.record.write(adopted, current?.version, lease);
    try {
      const rotated = await this.rotateWith(http, lease, await this.newKey());
      return { state: rotated, alreadyOnboarded: false };
    } catch (err) {
      if (expired) {
        if (isIiotAuthError(err) && err.code === ErrorCode.AUTH_REJECTED) {
          await this.record.update((state) => (state && state.boardingConfigId === this.boardingId ? { ...state, registrations: [] } : undefined), lease);
        }
        throw refused(err);
      }
      // The adopted credentials work: the rotation is tried again with the next token (rotationDue).
      if (!isIiotAuthError(err) || (err.code === AgentErrorCode.AGENT_STATE_ERROR && !isRecordConflict(err))) throw err;
      return { state: (await this.record.load())?.state ?? adopted, alreadyOnboarded: false };
    }
  }

  /** A rotation's steps, and its end told to the listeners. */
  private async rotateWith(http: HttpClient, lease: RecordLease, key: AgentKey | undefined): Promise<AgentState> {
    let state: AgentState;
    try {
      state = await this.rotationSteps(http, lease, key);
    } catch (error) {
      this.lastRotationFailure = { at: this.now(), error };
      this.tell({ kind: 'rotation-failed', error });
      throw error;
    }
    this.lastRotationFailure = undefined;
    this.tell({ kind: 'rotated' });
    return state;
  }

  private tell(event: AgentEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a health view must not break a rotation
      }
    }
  }

  private async rotationSteps(http: HttpClient, lease: RecordLease, key: AgentKey | undefined): Promise<AgentState> {
    const { profile } = this.options;
    let { state, version } = await this.requireOnboarded();
    if (key) {
      state = { ...state, pendingKey: { ...key, createdAt: new Date(this.now()).toISOString(), purpose: 'rotate' } };
      ({ state, version } = await this.record.write(state, version, lease));
    }
    await this.step('rotate:saved-intent');
    const candidates = byTrust(state.registrations).filter((r) => r.registrationAccessToken);
    if (candidates.length === 0) {
      throw new IiotAuthError(
        AgentErrorCode.AGENT_STATE_ERROR,
        `agent ${state.clientId} has no registration access token (its onboarding answer was lost), so its keys cannot be rotated: offboard it and onboard again before ${expiryText(state)}`,
      );
    }
    let lastError: unknown;
    for (const previous of candidates) {
      // A RAT used is a registration used: one awaiting the replicas only once the platform refused the others.
      if (previous.awaitingReplicas && !lastError) continue;
      const res = await http.send(buildRotateRequest(previous, profile, key));
      await this.step('rotate:answered');
      let registration: AgentRegistration;
      try {
        registration = readRegistrationResponse(res, { action: 'rotate', baseUrl: state.baseUrl, profile, ...(key ? { key } : {}), now: this.now() });
      } catch (err) {
        lastError = err;
        if (isIiotAuthError(err) && err.code === ErrorCode.AUTH_REJECTED) continue; // an older RAT may still work
        throw err;
      }
      const next = await this.saveRegistration(registration, lease);
      await this.step('rotate:saved');
      return await this.acknowledged(next);
    }
    throw lastError ?? unreplicatedError(state);
  }

  /**
   * The agent was offboarded (by this node's offboard action): its stored
   * credentials no longer work. They are kept, marked, so the state is never
   * silently lost, and onboarding asks for a new boarding configuration.
   */
  markOffboarded(): Promise<void> {
    return this.record.exclusive(async () => {
      await this.record.update((state) => (state && !state.offboardedAt ? { ...state, offboardedAt: new Date(this.now()).toISOString() } : undefined));
    });
  }

  async status(): Promise<AgentStatus> {
    const state = (await this.record.shared(() => this.record.load()))?.state;
    const current = this.inUse(state);
    const status: AgentStatus = {
      clientId: this.clientId,
      onboarded: !!current,
      profile: this.options.profile,
      registrationsKept: state && current ? state.registrations.length : 0,
      rotationPossible: !!current?.registrationAccessToken,
    };
    if (current && current.clientSecretExpiresAt > 0) status.clientSecretExpiresAt = new Date(current.clientSecretExpiresAt * 1000).toISOString();
    if (current && state?.lastRotationAt) status.lastRotationAt = state.lastRotationAt;
    if (this.replicaWait) status.waitingForReplicas = { ...this.replicaWait };
    if (current && state?.adoptedAt) status.adoption = adoptionOf(state.adoptedAt, state.lastRotationAt, this.clientId);
    return status;
  }

  /** The registration this agent uses: none when the state is another boarding's or offboarded; never one still waiting for replicas while another is there. */
  private inUse(state: AgentState | undefined): AgentRegistration | undefined {
    return state && state.boardingConfigId === this.boardingId && !state.offboardedAt ? byTrust(state.registrations)[0] : undefined;
  }

  /** True when the current credentials are within the rotation margin of their expiry. */
  rotationDue(state: AgentState): boolean {
    const at = this.rotationPoint(state);
    return at !== undefined && this.now() >= at;
  }

  /** When the current credentials are due for rotation (epoch ms); undefined when they cannot be rotated. */
  private rotationPoint(state: AgentState): number | undefined {
    // The registration in use: new credentials still waiting for the replicas are not (yet).
    const current = byTrust(state.registrations)[0];
    if (!current?.registrationAccessToken || current.clientSecretExpiresAt <= 0) return undefined;
    // Adopted and not rotated yet: the SDK's copy still works, so the agent has two owners.
    if (state.adoptedAt && !(state.lastRotationAt && state.lastRotationAt >= state.adoptedAt)) return Date.parse(state.adoptedAt);
    const received = Date.parse(current.receivedAt);
    const expires = current.clientSecretExpiresAt * 1000;
    const lifetime = Math.max(0, expires - received);
    const margin = lifetime * this.rotationMargin;
    return expires - margin;
  }

  /**
   * Reads the stored state for summary() before the agent's first operation:
   * a plain read (no claim, no lock, so another process using the agent is
   * not kept away), never a request to the platform. True when it found one.
   */
  async glimpse(): Promise<boolean> {
    if (this.record.cached) return true;
    const found = await readAgentState(this.options.store, this.clientId);
    this.glimpsed = found?.state;
    return !!found;
  }

  /** The health view's summary, from the state last read or written (no I/O). */
  summary(): AgentSummary {
    const { store, profile } = this.options;
    const state = this.record.cached?.state ?? this.glimpsed;
    const current = this.inUse(state);
    const summary: AgentSummary = {
      clientId: this.clientId,
      onboarded: !!current,
      profile,
      registrationsKept: state && current ? state.registrations.length : 0,
      rotationPossible: !!current?.registrationAccessToken,
      store: { kind: store.kind, where: store.where },
    };
    if (!state || !current) return summary;
    if (current.clientSecretExpiresAt > 0) summary.clientSecretExpiresAt = current.clientSecretExpiresAt * 1000;
    const rotateAt = this.rotationPoint(state);
    if (rotateAt !== undefined) summary.rotateAt = rotateAt;
    if (state.lastRotationAt) summary.lastRotationAt = Date.parse(state.lastRotationAt);
    if (this.lastRotationFailure) summary.lastRotationFailure = this.lastRotationFailure;
    if (state.adoptedAt) summary.adoption = adoptionOf(state.adoptedAt, state.lastRotationAt, this.clientId);
    if (this.replicaWait) summary.waitingForReplicas = { ...this.replicaWait };
    return summary;
  }

  /**
   * A token from the newest registration that works; the first success
   * confirms it. When all are refused and another instance changed the state
   * meanwhile (it rotated), the new registrations are tried too.
   */
  private async tokenFrom(http: HttpClient, state: AgentState): Promise<Token> {
    let firstError: unknown;
    const tried = new Set<string>();
    for (let round = 0; round < 2; round += 1) {
      for (const registration of byTrust(state.registrations)) {
        const id = registrationId(registration);
        if (tried.has(id)) continue;
        // New credentials that wait for the replicas: used only once the platform refused the others (it has moved on to them).
        if (registration.awaitingReplicas && !firstError) continue;
        tried.add(id);
        try {
          const token = await this.probe(http, registration, state);
          if (!registration.confirmed) await this.confirm(registration);
          return token;
        } catch (err) {
          firstError ??= err;
          // Only a refusal of these credentials makes an older registration worth trying.
          if (!isIiotAuthError(err) || err.code !== ErrorCode.AUTH_REJECTED) throw err;
        }
      }
      const before = this.record.cached;
      const fresh = await this.record.shared(() => this.record.load());
      if (!fresh || fresh === before) break;
      state = fresh.state;
    }
    if (!firstError && state.registrations.length > 0) throw unreplicatedError(state, this.replicaWait);
    throw firstError ?? new IiotAuthError(AgentErrorCode.AGENT_STATE_ERROR, `agent ${state.clientId} has no registration`);
  }

  private confirm(registration: AgentRegistration): Promise<void> {
    return this.record.exclusive(async () => {
      const id = registrationId(registration);
      const saved = await this.record.update((state) => {
        const index = state?.registrations.findIndex((r) => registrationId(r) === id) ?? -1;
        if (!state || index < 0 || state.registrations[index].confirmed) return undefined;
        const registrations = state.registrations.slice();
        registrations[index] = { ...registrations[index], confirmed: true };
        return { ...state, registrations };
      });
      if (saved) await this.step('token:confirmed');
    });
  }

  /**
   * An RSA onboarding whose answer was lost: the platform has our public key,
   * so a token request signed with the saved key tells whether it took.
   */
  private async recoverLostOnboarding(http: HttpClient, intent: AgentState, key: AgentKey, lease: RecordLease): Promise<AgentState | undefined> {
    const registration: AgentRegistration = {
      clientId: intent.clientId,
      clientSecretExpiresAt: 0,
      registrationAccessToken: '',
      registrationClientUri: `${intent.baseUrl}/api/agentmanagement/v3/register/${intent.clientId}`,
      tokenEndpointAuthMethod: 'private_key_jwt',
      privateKey: key.privateKey,
      keyId: key.keyId,
      receivedAt: new Date(this.now()).toISOString(),
      confirmed: false,
    };
    try {
      await this.probe(http, registration, intent);
    } catch {
      return undefined;
    }
    return this.saveRegistration({ ...registration, confirmed: true }, lease, intent);
  }

  /** This boarding configuration's state when it is onboarded; OFFBOARDED when this package offboarded it. */
  private onboarded(current: VersionedState | undefined): AgentState | undefined {
    const state = current?.state;
    if (!state || state.boardingConfigId !== this.boardingId) return undefined;
    if (state.offboardedAt) {
      throw new IiotAuthError(
        AgentErrorCode.OFFBOARDED,
        `agent ${this.clientId} was offboarded on ${state.offboardedAt.slice(0, 10)}: download a new boarding configuration, paste it into the agent config node and deploy`,
      );
    }
    return state.registrations.length > 0 ? state : undefined;
  }

  private async requireOnboarded(): Promise<VersionedState> {
    const current = await this.record.load();
    if (!current || current.state.boardingConfigId !== this.boardingId || current.state.registrations.length === 0) {
      throw new IiotAuthError(AgentErrorCode.NOT_ONBOARDED, `agent ${this.clientId} is not onboarded yet: send it the "onboard" action first`);
    }
    return current;
  }

  /**
   * The change that stores a registration the platform has just issued:
   * merged into whatever the store holds by then (newest first), so a write
   * that was refused, or repeated after a failure, never drops credentials.
   */
  private addRegistration(registration: AgentRegistration, intent?: AgentState): Change {
    const id = registrationId(registration);
    return (current) => {
      let base = current;
      if (!base || base.boardingConfigId !== this.boardingId) {
        if (!intent)
          throw new IiotAuthError(
            AgentErrorCode.AGENT_STATE_ERROR,
            `the stored state of agent ${this.clientId} was replaced while it rotated (a new boarding configuration?): check the agent's status`,
          );
        base = intent;
      }
      if (base.registrations.some((r) => registrationId(r) === id)) return undefined;
      const registrations = [registration, ...base.registrations].sort((a, b) => Date.parse(b.receivedAt) - Date.parse(a.receivedAt));
      const next: AgentState = { ...base, registrations };
      if (intent) delete next.onboardingStartedAt;
      else next.lastRotationAt = new Date(this.now()).toISOString();
      if (next.pendingKey && (!registration.keyId || next.pendingKey.keyId === registration.keyId || !intent)) delete next.pendingKey;
      return next;
    };
  }

  /**
   * Stores a registration the platform has just issued (see AgentRecord.save), resolving with the stored state.
   * Where the store has replicas to wait for, it is marked: no instance uses it until they acknowledged it.
   */
  private async saveRegistration(registration: AgentRegistration, lease: RecordLease, intent?: AgentState): Promise<AgentState> {
    const saved: AgentRegistration = this.record.acknowledges ? { ...registration, awaitingReplicas: true } : registration;
    return (await this.record.save(this.addRegistration(saved, intent), lease)) ?? (await this.requireOnboarded()).state;
  }

  /**
   * New credentials are used for a token (or a rotation) only once the
   * store's replicas hold them: a failover to a replica without them would
   * bring back credentials the platform let go when the new ones were used,
   * and lock the agent out. Called under the mutex, after writing a
   * registration and before a token. Resolves with the state to use: with
   * the new registration acknowledged, or, when too few replicas answered,
   * as stored, whose older registrations the token takes meanwhile (the
   * acknowledgement is tried again with the next token). Throws
   * AGENT_STATE_UNREPLICATED when no acknowledged registration is left (an
   * onboarding).
   */
  private async acknowledged(state: AgentState): Promise<AgentState> {
    if (!this.record.awaitingReplicas(state)) return state;
    try {
      const acknowledged = (await this.record.acknowledge()) ?? state;
      this.replicaWait = undefined;
      return acknowledged;
    } catch (err) {
      const unreplicated = isIiotAuthError(err) && err.code === AgentErrorCode.AGENT_STATE_UNREPLICATED;
      if (!unreplicated && !(isIiotAuthError(err) && err.code === AgentErrorCode.AGENT_STATE_ERROR)) throw err;
      this.replicaWait = { since: this.replicaWait?.since ?? new Date(this.now()).toISOString(), code: err.code, message: err.message };
      const stored = (await this.record.load().catch(() => undefined))?.state ?? state;
      if (stored.registrations.some((r) => !r.awaitingReplicas)) return stored;
      throw err;
    }
  }

  /** A new RSA key for the RSA_3072 profile (it takes seconds to make); nothing for a shared secret. */
  private async newKey(): Promise<AgentKey | undefined> {
    return this.options.profile === 'RSA_3072' ? generateAgentKey() : undefined;
  }

  /** Signs an assertion with a registration's credentials and takes a token with it: the token, or the refusal. */
  private async probe(http: HttpClient, registration: AgentRegistration, at: { tenant: string; baseUrl: string }): Promise<Token> {
    const assertion = await buildClientAssertion(registration, at.tenant, this.now());
    return readAgentTokenResponse(await http.send(buildAgentTokenRequest(at.baseUrl, assertion)), this.now(), registration);
  }

  /** A state of this boarding configuration with no registration yet, plus `fields`. */
  private freshState(fields: Partial<AgentState>): AgentState {
    const { boarding, profile } = this.options;
    return {
      format: STATE_FORMAT,
      clientId: boarding.clientId,
      tenant: boarding.tenant,
      baseUrl: boarding.baseUrl,
      profile,
      boardingConfigId: this.boardingId,
      registrations: [],
      updatedAt: '',
      ...fields,
    };
  }

  /** Releases the agent's claim (the config node stopped). */
  async close(): Promise<void> {
    await this.record.close();
    // Stopping must not fail: every write was awaited, so a store that cannot close (Redis gone) holds nothing unsaved.
    await this.options.onClose?.().catch(() => undefined);
  }

  private async step(name: AgentStep): Promise<void> {
    await this.options.onStep?.(name);
  }
}

/** Where an adopted registration stands: when, and who owns the agent now. */
function adoptionOf(adoptedAt: string, lastRotationAt: string | undefined, clientId: string): NonNullable<AgentStatus['adoption']> {
  const rotated = lastRotationAt && lastRotationAt >= adoptedAt;
  return {
    from: 'sdk-state-file',
    at: adoptedAt,
    note: rotated
      ? `adopted from an SDK state file; this Node-RED has rotated the credentials since, so the SDK's copy (.mc/${clientId}.json) no longer works: this Node-RED alone owns the agent now`
      : `adopted from an SDK state file; the credentials are rotated with the next token, after which the SDK's copy (.mc/${clientId}.json) stops working: do not run the SDK or node-red-contrib-mindconnect with it`,
  };
}

function expiryText(state: AgentState): string {
  const expires = state.registrations[0]?.clientSecretExpiresAt;
  return expires ? new Date(expires * 1000).toISOString().slice(0, 10) : 'its credentials expire';
}

/** Registrations acknowledged by the store's replicas first (newest first), then those still waiting for them. */
function byTrust(registrations: AgentRegistration[]): AgentRegistration[] {
  return [...registrations.filter((r) => !r.awaitingReplicas), ...registrations.filter((r) => r.awaitingReplicas)];
}

function unreplicatedError(state: AgentState, wait?: ReplicaWait): IiotAuthError {
  return new IiotAuthError(
    AgentErrorCode.AGENT_STATE_UNREPLICATED,
    wait?.code === AgentErrorCode.AGENT_STATE_UNREPLICATED
      ? wait.message
      : `the new credentials of agent ${state.clientId} wait for the store's replicas to acknowledge them before they are used: check that the Redis replicas run and replicate`,
  );
}
