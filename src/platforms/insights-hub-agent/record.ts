import { IiotAuthError } from '../../core/errors.js';
import { isRecordConflict, type KeyedMutex, type RecordLease, type RecordStore } from '../../core/record-store.js';
import { AgentErrorCode } from './errors.js';
import { type AgentState, readAgentState, registrationId, type VersionedState, writeAgentState } from './state.js';

/** A change to the stored state, applied to what the store holds when it is written; undefined: nothing to do. */
export type Change = (current: AgentState | undefined) => AgentState | undefined;

export interface AgentRecordOptions {
  clientId: string;
  store: RecordStore;
  /** Where the agent's state was kept before: copied from there when `store` has none (moving between stores). */
  importFrom?: RecordStore;
  mutex: KeyedMutex;
  /** How long a crashed process's lock blocks the agent (ms; the file store takes at least 2000). */
  lockStaleMs?: number;
  /** How long onboarding or a requested rotation waits for another instance's (ms, default 30000). */
  lockWaitMs?: number;
}

/**
 * One agent's stored state, as the life cycle uses it: the version last read
 * (re-read only when the store's differs), changes written against that
 * version and re-applied when another instance wrote meanwhile, the lock in
 * the store for changes with effects on the platform, and this process's
 * claim on the record (the file store keeps a second process away). In this
 * process the mutex runs one operation at a time per agent.
 */
export class AgentRecord {
  private claiming?: Promise<() => Promise<void>> | undefined;
  /** The state last read or written, with its version. */
  private cachedState?: VersionedState | undefined;
  /** A change whose write failed (new credentials): written before anything else happens, and never used until it is. */
  private unsaved?: Change | undefined;
  /**
   * Changes with new credentials that were written but not yet acknowledged
   * by the store's replicas: written again before they are acknowledged,
   * since a failover may have lost them.
   */
  private unacknowledged: Change[] = [];

  constructor(private readonly options: AgentRecordOptions) {}

  get clientId(): string {
    return this.options.clientId;
  }

  /** Where the state is kept, for messages. */
  get where(): string {
    return this.options.store.where;
  }

  /** The state last read or written (compared by identity to see whether a load found a change). */
  get cached(): VersionedState | undefined {
    return this.cachedState;
  }

  /**
   * The stored state: re-read only when its version changed. With no state
   * here but one in the store the agent used before, that one is copied over
   * (moving between stores never needs a new onboarding).
   */
  async load(): Promise<VersionedState | undefined> {
    const { store, importFrom } = this.options;
    if (this.cachedState && (await store.version(this.clientId)) === this.cachedState.version) return this.cachedState;
    let current = await readAgentState(store, this.clientId);
    if (!current && importFrom) current = await this.importState(importFrom);
    this.cachedState = current;
    return current;
  }

  /** Writes a whole state if the stored one is still at `expected`, and only while `lease` is held. */
  async write(state: AgentState, expected: VersionedState['version'] | undefined, lease: RecordLease): Promise<VersionedState> {
    this.cachedState = await writeAgentState(this.options.store, state, expected, lease);
    return this.cachedState;
  }

  /**
   * Applies a change to the stored state and writes it, naming the version
   * it read; refused because another instance wrote meanwhile, it reads
   * again and re-applies. Resolves with the new state, or undefined when the
   * change found nothing to do.
   */
  async update(change: Change, lease?: RecordLease): Promise<AgentState | undefined> {
    let conflict: unknown;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const current = await this.load();
      const next = change(current?.state);
      if (!next) return undefined;
      try {
        this.cachedState = await writeAgentState(this.options.store, next, current?.version, lease);
        return this.cachedState.state;
      } catch (err) {
        if (!isRecordConflict(err)) throw err;
        conflict = err;
        if (err.reason === 'lease-lost') lease = undefined;
      }
    }
    throw conflict;
  }

  /**
   * Saves credentials the platform has just issued. If the write fails they
   * are kept in memory, unused, and written before the next operation: the
   * platform shows them only once. A lock lost meanwhile does not stop it
   * (the credentials exist on the platform now); the version check still does.
   * Undefined when the store held them already.
   */
  async save(change: Change, lease?: RecordLease): Promise<AgentState | undefined> {
    try {
      const state = await this.update(change, lease);
      this.unsaved = undefined;
      if (this.acknowledges) this.unacknowledged.push(change);
      return state;
    } catch (err) {
      this.unsaved = change;
      throw err;
    }
  }

  /** True when new credentials wait for the store's replicas before they are used (Redis with `minReplicas`). */
  get acknowledges(): boolean {
    return this.options.store.minReplicas > 0;
  }

  /** True when new credentials wait for the replicas: marked so in the state, or written by this process and not acknowledged yet. */
  awaitingReplicas(state: AgentState | undefined): boolean {
    return this.unacknowledged.length > 0 || !!state?.registrations.some((r) => r.awaitingReplicas);
  }

  /**
   * Has the store's replicas acknowledge the new credentials: the changes
   * this process wrote are written again where a failover lost them, the
   * stored version is acknowledged (RecordStore.acknowledge), then the marks
   * of the registrations it held are cleared, in a write of its own: lost in
   * a failover, a mark only makes a registration wait for another
   * acknowledgement. Resolves with the state; throws the store's error when
   * too few replicas acknowledged (the credentials stay marked, unused).
   */
  async acknowledge(): Promise<AgentState | undefined> {
    for (const change of this.unacknowledged) await this.update(change);
    const current = await this.load();
    const marked = new Set(current?.state.registrations.filter((r) => r.awaitingReplicas).map(registrationId));
    if (current && marked.size > 0) await this.options.store.acknowledge(this.clientId, current.version);
    this.unacknowledged = [];
    if (marked.size === 0) return current?.state;
    const cleared = await this.update((state) => {
      if (!state?.registrations.some((r) => r.awaitingReplicas && marked.has(registrationId(r)))) return undefined;
      const registrations = state.registrations.map((r) => {
        if (!marked.has(registrationId(r))) return r;
        const { awaitingReplicas: _, ...acknowledged } = r;
        return acknowledged;
      });
      return { ...state, registrations };
    });
    return cleared ?? (await this.load())?.state;
  }

  /** The agent's lock in the store, for a change with effects on the platform; AGENT_LOCKED after waiting. */
  async lease(what: 'onboarded' | 'rotated'): Promise<RecordLease> {
    const waitMs = Math.max(this.options.lockWaitMs ?? 30_000, this.ttlMs() * 2);
    const lease = await this.options.store.lock(this.clientId, { ttlMs: this.ttlMs(), waitMs });
    if (!lease) {
      throw new IiotAuthError(
        AgentErrorCode.AGENT_LOCKED,
        `agent ${this.clientId} is being ${what} by another Node-RED instance (its lock in ${this.where} was held for more than ${Math.round(waitMs / 1000)} s): try again shortly`,
      );
    }
    return lease;
  }

  /** The agent's lock if no other instance holds it now; undefined if one does. */
  tryLease(): Promise<RecordLease | undefined> {
    return this.options.store.lock(this.clientId, { ttlMs: this.ttlMs(), waitMs: 0 });
  }

  /** One operation at a time per agent in this process, under the claim, after any unsaved change is written. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.options.mutex.run(this.clientId, async () => {
      await this.ensureClaimed();
      // Still failing: the stored credentials keep working meanwhile, so go on.
      if (this.unsaved) await this.save(this.unsaved).catch(() => undefined);
      // Written but not acknowledged: a failover may have lost them, and an onboarding must not start over without them.
      for (const change of this.unacknowledged) await this.update(change).catch(() => undefined);
      return task();
    });
  }

  /** A read outside the mutex would race a write's cache update: reads go through it too. */
  shared<T>(task: () => Promise<T>): Promise<T> {
    return this.options.mutex.run(this.clientId, async () => {
      await this.ensureClaimed();
      return task();
    });
  }

  /** Releases the claim (the config node stopped). */
  async close(): Promise<void> {
    const claiming = this.claiming;
    this.claiming = undefined;
    // A claim that failed holds nothing; a failed release leaves a lock that goes stale by itself.
    if (claiming) {
      await claiming
        .then(
          (release) => release(),
          () => undefined,
        )
        .catch(() => undefined);
    }
  }

  private async importState(from: RecordStore): Promise<VersionedState | undefined> {
    const found = await readAgentState(from, this.clientId);
    if (!found) return undefined;
    // A process that still uses the old store (the file store's lock) must stop first.
    const release = await from.claim(this.clientId, { staleMs: this.ttlMs(), waitMs: 0 });
    try {
      const previous = await readAgentState(from, this.clientId);
      if (!previous) return readAgentState(this.options.store, this.clientId);
      let copied: VersionedState;
      try {
        copied = await writeAgentState(this.options.store, previous.state, undefined);
      } catch (err) {
        if (isRecordConflict(err)) return readAgentState(this.options.store, this.clientId); // another instance copied it first
        throw err;
      }
      // The old copy is renamed, not deleted: it must not be used again, but stays for reference.
      // Best effort: the state is already in the new store, the only one read from now on.
      await from.retire(this.clientId).catch(() => undefined);
      return copied;
    } finally {
      await release();
    }
  }

  private async ensureClaimed(): Promise<void> {
    this.claiming ??= this.options.store.claim(this.clientId, { staleMs: this.ttlMs() });
    try {
      await this.claiming;
    } catch (err) {
      this.claiming = undefined; // try again with the next operation
      throw err;
    }
  }

  private ttlMs(): number {
    return this.options.lockStaleMs ?? 10_000;
  }
}
