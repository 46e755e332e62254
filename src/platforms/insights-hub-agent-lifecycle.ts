import {
  type AgentRegistration,
  type AgentState,
  type AgentStateStore,
  boardingConfigId,
  type KeyedMutex,
  STATE_FORMAT,
  type SecurityProfile,
} from '../core/agent-state.js';
import { ErrorCode, IiotAuthError, isIiotAuthError } from '../core/errors.js';
import type { HttpClient } from '../core/http.js';
import type { Token, TokenProvider } from '../core/token.js';
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
} from './insights-hub-agent.js';

/**
 * The order of an agent's steps, so that no failure loses its credentials:
 * every new credential is saved before it is used, the previous registration
 * is kept until the new one has produced a token, and a rotation whose answer
 * was lost is retried with the stored registration access tokens, newest
 * first. One operation at a time per agent (the mutex); the store's lock file
 * keeps a second process away.
 */
export interface AgentLifecycleOptions {
  store: AgentStateStore;
  mutex: KeyedMutex;
  boarding: BoardingConfiguration;
  profile: SecurityProfile;
  /** The user's RSA key for onboarding; without one, a key is generated and kept in the state. */
  userKey?: AgentKey;
  now?: () => number;
  random?: () => number;
  /** How long a crashed process's lock file blocks the agent (ms, at least 2000). */
  lockStaleMs?: number;
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
}

/** Rotation starts when 25 to 35 % of the secret's lifetime is left (jittered per agent). */
const ROTATE_MARGIN_MIN = 0.25;
const ROTATE_MARGIN_SPREAD = 0.1;

export class AgentLifecycle implements TokenProvider {
  readonly baseUrl: string;
  private readonly now: () => number;
  private readonly random: () => number;
  private locking?: Promise<() => Promise<void>>;
  /** A state whose write failed: written before anything else happens, and never used until it is. */
  private unsaved?: AgentState;

  constructor(private readonly options: AgentLifecycleOptions) {
    this.baseUrl = options.boarding.baseUrl;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  get clientId(): string {
    return this.options.boarding.clientId;
  }

  /** The engine's entry: onboards on first use, rotates when due, then gets a token. */
  async fetchToken(http: HttpClient): Promise<Token> {
    let state = await this.onboard(http).then((r) => r.state);
    if (this.rotationDue(state)) {
      try {
        state = await this.rotate(http);
      } catch (err) {
        // The current credentials still work: a failed rotation is retried
        // with the next token; a locked-out agent shows up as a token error.
        if (!isIiotAuthError(err) || err.code === ErrorCode.AGENT_STATE_ERROR) throw err;
      }
    }
    return this.tokenFrom(http, state);
  }

  /** Registers the agent with its IAT, unless this boarding configuration is onboarded already. */
  onboard(http: HttpClient): Promise<{ state: AgentState; alreadyOnboarded: boolean }> {
    return this.exclusive(async () => {
      const { boarding, profile, store } = this.options;
      const id = boardingConfigId(boarding.iat);
      const existing = await store.read(boarding.clientId);
      if (existing && existing.boardingConfigId === id && existing.offboardedAt) {
        throw new IiotAuthError(
          ErrorCode.OFFBOARDED,
          `agent ${boarding.clientId} was offboarded on ${existing.offboardedAt.slice(0, 10)}: download a new boarding configuration, paste it into the agent config node and deploy`,
        );
      }
      if (existing && existing.boardingConfigId === id && existing.registrations.length > 0) {
        return { state: existing, alreadyOnboarded: true };
      }
      // A new boarding configuration (or none onboarded yet): onboard afresh.
      // An RSA key is saved before it is sent, so a lost answer can be recovered.
      const key = profile === 'RSA_3072' ? (existing?.boardingConfigId === id ? existing.pendingKey : undefined) ?? this.options.userKey ?? (await generateAgentKey()) : undefined;
      const intent: AgentState = {
        format: STATE_FORMAT,
        clientId: boarding.clientId,
        tenant: boarding.tenant,
        baseUrl: boarding.baseUrl,
        profile,
        boardingConfigId: id,
        onboardingStartedAt: new Date(this.now()).toISOString(),
        registrations: [],
        updatedAt: '',
        ...(key ? { pendingKey: { ...key, createdAt: new Date(this.now()).toISOString(), purpose: 'onboard' as const } } : {}),
      };
      await store.write(intent);
      await this.step('onboard:saved-intent');

      const res = await http.send(buildRegisterRequest(boarding, profile, key));
      await this.step('onboard:answered');
      let registration: AgentRegistration;
      try {
        registration = readRegistrationResponse(res, { action: 'onboard', config: boarding, profile, ...(key ? { key } : {}), now: this.now() });
      } catch (err) {
        // The IAT was used, perhaps by our own request whose answer was lost:
        // with RSA the key we saved is registered, so the agent can still get tokens.
        if (isIiotAuthError(err) && err.code === ErrorCode.IAT_USED && key) {
          const recovered = await this.recoverLostOnboarding(http, intent, key);
          if (recovered) return { state: recovered, alreadyOnboarded: false };
        }
        throw err;
      }
      const state: AgentState = { ...intent, registrations: [registration] };
      delete state.onboardingStartedAt;
      delete state.pendingKey;
      await this.save(state);
      await this.step('onboard:saved');
      return { state, alreadyOnboarded: false };
    });
  }

  /** Key rotation with the registration access token, trying stored ones newest first. */
  rotate(http: HttpClient): Promise<AgentState> {
    return this.exclusive(async () => {
      const { profile, store } = this.options;
      let state = await this.requireOnboarded();
      const key = profile === 'RSA_3072' ? await generateAgentKey() : undefined;
      if (key) {
        state = { ...state, pendingKey: { ...key, createdAt: new Date(this.now()).toISOString(), purpose: 'rotate' } };
        await store.write(state);
      }
      await this.step('rotate:saved-intent');
      const candidates = state.registrations.filter((r) => r.registrationAccessToken);
      if (candidates.length === 0) {
        throw new IiotAuthError(
          ErrorCode.AGENT_STATE_ERROR,
          `agent ${state.clientId} has no registration access token (its onboarding answer was lost), so its keys cannot be rotated: offboard it and onboard again before ${expiryText(state)}`,
        );
      }
      let lastError: unknown;
      for (const previous of candidates) {
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
        const next: AgentState = { ...state, registrations: [registration, ...state.registrations], lastRotationAt: new Date(this.now()).toISOString() };
        delete next.pendingKey;
        await this.save(next);
        await this.step('rotate:saved');
        return next;
      }
      throw lastError;
    });
  }

  /**
   * The agent was offboarded (by this node's offboard action): its stored
   * credentials no longer work. They are kept, marked, so the state is never
   * silently lost, and onboarding asks for a new boarding configuration.
   */
  markOffboarded(): Promise<void> {
    return this.exclusive(async () => {
      const state = await this.options.store.read(this.clientId);
      if (state && !state.offboardedAt) await this.options.store.write({ ...state, offboardedAt: new Date(this.now()).toISOString() });
    });
  }

  async status(): Promise<AgentStatus> {
    const state = await this.options.store.read(this.clientId);
    const current =
      state && state.boardingConfigId === boardingConfigId(this.options.boarding.iat) && !state.offboardedAt ? state.registrations[0] : undefined;
    const status: AgentStatus = {
      clientId: this.clientId,
      onboarded: !!current,
      profile: this.options.profile,
      registrationsKept: current ? state!.registrations.length : 0,
      rotationPossible: !!current?.registrationAccessToken,
    };
    if (current && current.clientSecretExpiresAt > 0) status.clientSecretExpiresAt = new Date(current.clientSecretExpiresAt * 1000).toISOString();
    if (current && state?.lastRotationAt) status.lastRotationAt = state.lastRotationAt;
    return status;
  }

  /** True when the current credentials are within the rotation margin of their expiry. */
  rotationDue(state: AgentState): boolean {
    const current = state.registrations[0];
    if (!current || !current.registrationAccessToken || current.clientSecretExpiresAt <= 0) return false;
    const received = Date.parse(current.receivedAt);
    const expires = current.clientSecretExpiresAt * 1000;
    const lifetime = Math.max(0, expires - received);
    const margin = lifetime * (ROTATE_MARGIN_MIN + ROTATE_MARGIN_SPREAD * this.random());
    return this.now() >= expires - margin;
  }

  /** A token from the newest registration that works; the first success confirms it. */
  private async tokenFrom(http: HttpClient, state: AgentState): Promise<Token> {
    let firstError: unknown;
    for (const registration of state.registrations) {
      try {
        const assertion = await buildClientAssertion(registration, state.tenant, this.now());
        const res = await http.send(buildAgentTokenRequest(state.baseUrl, assertion));
        const token = readAgentTokenResponse(res, this.now(), registration);
        if (!registration.confirmed) await this.confirm(registration);
        return token;
      } catch (err) {
        firstError ??= err;
        // Only a refusal of these credentials makes an older registration worth trying.
        if (!isIiotAuthError(err) || err.code !== ErrorCode.AUTH_REJECTED) throw err;
      }
    }
    throw firstError ?? new IiotAuthError(ErrorCode.AGENT_STATE_ERROR, `agent ${state.clientId} has no registration`);
  }

  private confirm(registration: AgentRegistration): Promise<void> {
    return this.exclusive(async () => {
      const state = await this.options.store.read(this.clientId);
      const stored = state?.registrations.find((r) => r.registrationAccessToken === registration.registrationAccessToken && r.receivedAt === registration.receivedAt);
      if (!state || !stored || stored.confirmed) return;
      stored.confirmed = true;
      await this.options.store.write(state);
      await this.step('token:confirmed');
    });
  }

  /**
   * An RSA onboarding whose answer was lost: the platform has our public key,
   * so a token request signed with the saved key tells whether it took.
   */
  private async recoverLostOnboarding(http: HttpClient, intent: AgentState, key: AgentKey): Promise<AgentState | undefined> {
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
      const assertion = await buildClientAssertion(registration, intent.tenant, this.now());
      readAgentTokenResponse(await http.send(buildAgentTokenRequest(intent.baseUrl, assertion)), this.now(), registration);
    } catch {
      return undefined;
    }
    const state: AgentState = { ...intent, registrations: [{ ...registration, confirmed: true }] };
    delete state.onboardingStartedAt;
    delete state.pendingKey;
    await this.save(state);
    return state;
  }

  private async requireOnboarded(): Promise<AgentState> {
    const state = await this.options.store.read(this.clientId);
    if (!state || state.boardingConfigId !== boardingConfigId(this.options.boarding.iat) || state.registrations.length === 0) {
      throw new IiotAuthError(ErrorCode.NOT_ONBOARDED, `agent ${this.clientId} is not onboarded yet: send it the "onboard" action first`);
    }
    return state;
  }

  /** Releases the agent's lock file (the config node stopped). */
  async close(): Promise<void> {
    const locking = this.locking;
    this.locking = undefined;
    if (locking) await locking.then((release) => release(), () => undefined).catch(() => undefined);
  }

  /** One operation at a time per agent in this process, and the lock file against other processes. */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.options.mutex.run(this.clientId, async () => {
      await this.ensureLocked();
      // Still failing: the stored credentials keep working meanwhile, so go on.
      if (this.unsaved) await this.save(this.unsaved).catch(() => undefined);
      return task();
    });
  }

  /**
   * Saves credentials the platform has just issued. If the write fails they
   * are kept in memory, unused, and written before the next operation: the
   * platform shows them only once.
   */
  private async save(state: AgentState): Promise<void> {
    try {
      await this.options.store.write(state);
      this.unsaved = undefined;
    } catch (err) {
      this.unsaved = state;
      throw err;
    }
  }

  private async ensureLocked(): Promise<void> {
    this.locking ??= this.options.store.lock(this.clientId, this.options.lockStaleMs !== undefined ? { staleMs: this.options.lockStaleMs } : {});
    try {
      await this.locking;
    } catch (err) {
      this.locking = undefined; // try again with the next operation
      throw err;
    }
  }

  private async step(name: AgentStep): Promise<void> {
    await this.options.onStep?.(name);
  }
}

function expiryText(state: AgentState): string {
  const expires = state.registrations[0]?.clientSecretExpiresAt;
  return expires ? new Date(expires * 1000).toISOString().slice(0, 10) : 'its credentials expire';
}
