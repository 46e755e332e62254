import { ErrorCode, isIiotAuthError } from '../core/errors.js';
import type { ConnectionObserver } from '../core/platform-connection.js';
import type { CredentialEvent, CredentialState } from '../core/token-engine.js';
import { AgentErrorCode } from '../platforms/insights-hub-agent/errors.js';
import type { AgentEvent, AgentSummary } from '../platforms/insights-hub-agent/lifecycle.js';
import { type HealthEvent, type HealthTopic, type SettledState, settle, transitionTopic } from './events.js';
import { compareEntries, deriveEntry, type FailureInput, type HealthCounts, type HealthEntry, type HealthInputs, publishedView, zeroCounts } from './model.js';

/**
 * The health entries of one Node-RED runtime: one per config node of this
 * package, registered when it starts. The engine, the connections and the
 * agent life cycles push what happens; each push derives the entry again,
 * publishes it when its published view changed (counter-only changes at most
 * once per COUNTS_COALESCE_MS) and tells subscribers of each transition.
 * Counts and last outcomes live per config node id for the runtime's life,
 * so a redeploy keeps them; a removed config node takes them along.
 */
export const COUNTS_COALESCE_MS = 5000;

/** The codes that mean the platform refuses the credentials for good. */
export const LOCKED_OUT_CODES: ReadonlySet<string> = new Set([
  ErrorCode.AUTH_REJECTED,
  AgentErrorCode.SECRET_EXPIRED,
  AgentErrorCode.IAT_USED,
  AgentErrorCode.IAT_EXPIRED,
  AgentErrorCode.OFFBOARDED,
]);

/** What the registry reads of an agent: its life cycle, structurally. */
export interface AgentHealthSource {
  summary(): AgentSummary;
  /** Reads the stored state for the summary (the store only, never the platform); true when it found one. */
  glimpse?(): Promise<boolean>;
  observe(listener: (event: AgentEvent) => void): () => void;
}

/** One config node, as its code registers it. */
export interface HealthSource {
  id: string;
  type: string;
  platform: string;
  platformLabel: string;
  name: string;
  configError?: { code: string; message: string } | undefined;
  credential?: { readonly state: CredentialState } | undefined;
  /** Redacts every secret of this config node from a text. */
  redact(text: string): string;
  agent?: AgentHealthSource | undefined;
  /** A new token now (single flight). */
  renew?: (() => Promise<unknown>) | undefined;
  /** A rotation now, then a token with the new credentials (single flight). */
  rotate?: (() => Promise<unknown>) | undefined;
}

export interface HealthListener {
  /** A transition or an agent's event. */
  event?(event: HealthEvent): void;
  /** Any entry derived again (the events node checks its warnings). */
  entry?(entry: HealthEntry): void;
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: Timers = {
  set: (fn, ms) => setTimeout(fn, Math.min(ms, 2 ** 31 - 1)).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface HealthRegistryOptions {
  now?: () => number;
  timers?: Timers;
  lockedOutCodes?: ReadonlySet<string>;
}

/** What lives per config node id across redeploys. */
interface Stats {
  counts: HealthCounts;
  lastSuccessAt?: number;
  lastFailure?: FailureInput;
  settled?: SettledState;
  rotationFailing: boolean;
  view?: string;
  countsText?: string;
  lastPublishAt: number;
  countsTimer?: unknown;
  clockTimer?: unknown;
  lastTransition?: { event: HealthEvent; seq: number };
}

interface Tracked {
  source: HealthSource;
  closed: boolean;
  stopObserving?: () => void;
}

/** What one events node remembers across its redeploys. */
export interface SubscriberMemory {
  /** The last transition it was told of, per config node id. */
  delivered: Map<string, number>;
  /** When it last warned of an expiring secret, per config node id. */
  warned: Map<string, number>;
}

export class HealthRegistry {
  /** The registry's clock (injectable): the events node's warnings use it too. */
  readonly now: () => number;
  private readonly timers: Timers;
  private readonly lockedOutCodes: ReadonlySet<string>;
  private readonly tracked = new Map<string, Tracked>();
  private readonly stats = new Map<string, Stats>();
  private readonly listeners = new Set<HealthListener>();
  private readonly memories = new Map<string, SubscriberMemory>();
  private publisher: ((payload: HealthEntry | { id: string; removed: true }) => void) | undefined;
  private seq = 0;

  constructor(options: HealthRegistryOptions = {}) {
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? REAL_TIMERS;
    this.lockedOutCodes = options.lockedOutCodes ?? LOCKED_OUT_CODES;
  }

  /** Where published entries go (Node-RED's comms). */
  publishTo(publisher: (payload: HealthEntry | { id: string; removed: true }) => void): void {
    this.publisher = publisher;
  }

  /** A config node started; `close` when it stops (removed: deleted from the flows). */
  register(source: HealthSource): { close(removed: boolean): void } {
    const previous = this.tracked.get(source.id);
    previous?.stopObserving?.();
    const tracked: Tracked = { source, closed: false };
    if (source.agent) tracked.stopObserving = source.agent.observe((event) => this.onAgentEvent(source.id, event));
    this.tracked.set(source.id, tracked);
    this.update(source.id);
    if (source.agent?.glimpse && !source.configError) {
      source.agent.glimpse().then(
        (found) => {
          if (found && this.tracked.get(source.id) === tracked) this.update(source.id);
        },
        () => undefined, // a store that cannot be read shows up with the first token request
      );
    }
    return {
      close: (removed) => {
        if (this.tracked.get(source.id) !== tracked) return;
        tracked.stopObserving?.();
        tracked.closed = true;
        if (removed) this.remove(source.id);
        else {
          // Stopped (a redeploy, or Node-RED stopping): no timer of its own outlives it; starting again derives the entry anew.
          const stats = this.stats.get(source.id);
          if (stats) this.clearTimers(stats);
        }
      },
    };
  }

  /** The engine's observer: every credential of this runtime. */
  readonly engineObserver = (id: string, event: CredentialEvent): void => {
    if (!this.tracked.has(id)) return;
    const stats = this.statsOf(id);
    switch (event.kind) {
      case 'fetch-started':
        stats.counts.tokenRequests += 1;
        if (event.renewal) stats.counts.renewals += 1;
        break;
      case 'fetch-succeeded':
        stats.lastSuccessAt = this.now();
        break;
      case 'fetch-failed':
        stats.counts.failures += 1;
        stats.lastFailure = this.failureOf(id, event.error);
        break;
      case 'relogin':
        stats.counts.relogins += 1;
        break;
      case 'dropped':
        break;
    }
    this.update(id);
  };

  /** A connection's observer: API requests and 429 waits. */
  connectionObserver(id: string): ConnectionObserver {
    const count = (name: 'apiRequests' | 'rateLimitWaits') => {
      const tracked = this.tracked.get(id);
      if (!tracked) return;
      const stats = this.statsOf(id);
      stats.counts[name] += 1;
      // Only a counter changed: no new state, so no need to derive the entry for every message; published coalesced.
      if (!tracked.closed) this.countsChanged(id, stats);
    };
    return { apiRequest: () => count('apiRequests'), rateLimitWait: () => count('rateLimitWaits') };
  }

  /** The entries of the running config nodes, in the contract's order. */
  entries(): HealthEntry[] {
    const entries: HealthEntry[] = [];
    for (const [id, tracked] of this.tracked) if (!tracked.closed) entries.push(this.derive(id, tracked));
    return entries.sort(compareEntries);
  }

  /** The entry of a running config node. */
  entry(id: string): HealthEntry | undefined {
    const tracked = this.tracked.get(id);
    return tracked && !tracked.closed ? this.derive(id, tracked) : undefined;
  }

  /** The source of a running config node (for the admin actions). */
  source(id: string): HealthSource | undefined {
    const tracked = this.tracked.get(id);
    return tracked && !tracked.closed ? tracked.source : undefined;
  }

  subscribe(listener: HealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** An events node's memory, kept across its redeploys (by its id); `forget` when it is removed. */
  memory(subscriberId: string): SubscriberMemory {
    let memory = this.memories.get(subscriberId);
    if (!memory) {
      memory = { delivered: new Map(), warned: new Map() };
      this.memories.set(subscriberId, memory);
    }
    return memory;
  }

  forget(subscriberId: string): void {
    this.memories.delete(subscriberId);
  }

  /** The last transition of each running credential into a problem that `memory` has not been told of. */
  untold(memory: SubscriberMemory): HealthEvent[] {
    const events: HealthEvent[] = [];
    for (const [id, tracked] of this.tracked) {
      const last = this.stats.get(id)?.lastTransition;
      if (tracked.closed || !last) continue;
      if ((memory.delivered.get(id) ?? 0) >= last.seq) continue;
      memory.delivered.set(id, last.seq);
      if (last.event.topic !== 'token/recovered') events.push({ ...last.event, entry: this.derive(id, tracked) });
    }
    return events;
  }

  /** Marks an event told to `memory`. */
  told(memory: SubscriberMemory, event: HealthEvent): void {
    const last = this.stats.get(event.entry.id)?.lastTransition;
    if (last) memory.delivered.set(event.entry.id, Math.max(memory.delivered.get(event.entry.id) ?? 0, last.seq));
  }

  /** Stops every timer (the runtime stops). */
  close(): void {
    for (const stats of this.stats.values()) this.clearTimers(stats);
  }

  private statsOf(id: string): Stats {
    let stats = this.stats.get(id);
    if (!stats) {
      stats = { counts: zeroCounts(), rotationFailing: false, lastPublishAt: 0 };
      this.stats.set(id, stats);
    }
    return stats;
  }

  private remove(id: string): void {
    const stats = this.stats.get(id);
    if (stats) this.clearTimers(stats);
    this.tracked.delete(id);
    this.stats.delete(id);
    this.publisher?.({ id, removed: true });
  }

  private clearTimers(stats: Stats): void {
    if (stats.countsTimer !== undefined) this.timers.clear(stats.countsTimer);
    if (stats.clockTimer !== undefined) this.timers.clear(stats.clockTimer);
    stats.countsTimer = undefined;
    stats.clockTimer = undefined;
  }

  /** A code and a redacted message: never the error's text unredacted, never its cause. */
  private failureOf(id: string, error: unknown): FailureInput {
    const code = isIiotAuthError(error) ? error.code : ErrorCode.INTERNAL_ERROR;
    const source = this.tracked.get(id)?.source;
    const message = error instanceof Error && source ? source.redact(error.message) : 'an unexpected failure (details in the log)';
    return { at: this.now(), code, message };
  }

  private inputs(id: string, tracked: Tracked): HealthInputs {
    const { source } = tracked;
    const stats = this.statsOf(id);
    const inputs: HealthInputs = {
      id,
      type: source.type,
      platform: source.platform,
      platformLabel: source.platformLabel,
      name: source.name,
      configError: source.configError ? { code: source.configError.code, message: source.redact(source.configError.message) } : undefined,
      credential: source.credential?.state,
      closed: tracked.closed,
      lastSuccessAt: stats.lastSuccessAt,
      lastFailure: stats.lastFailure,
      counts: stats.counts,
      lockedOutCodes: this.lockedOutCodes,
    };
    if (source.agent && !source.configError) {
      const { lastRotationFailure, ...summary } = source.agent.summary();
      inputs.agent = { ...summary, ...(lastRotationFailure ? { lastRotationFailure: this.rotationFailureOf(source, lastRotationFailure) } : {}) };
    }
    return inputs;
  }

  private rotationFailureOf(source: HealthSource, failure: { at: number; error: unknown }): FailureInput {
    const { error } = failure;
    return {
      at: failure.at,
      code: isIiotAuthError(error) ? error.code : ErrorCode.INTERNAL_ERROR,
      message: error instanceof Error ? source.redact(error.message) : 'an unexpected failure (details in the log)',
    };
  }

  private derive(id: string, tracked: Tracked): HealthEntry {
    return deriveEntry(this.inputs(id, tracked), this.now());
  }

  private onAgentEvent(id: string, event: AgentEvent): void {
    const tracked = this.tracked.get(id);
    if (!tracked) return;
    const stats = this.statsOf(id);
    const entry = this.update(id);
    if (!entry) return;
    if (event.kind === 'rotated') {
      stats.rotationFailing = false;
      this.emit({ topic: 'agent/rotated', entry, previous: stats.settled, at: this.now() });
    } else if (!stats.rotationFailing) {
      // Retried with each token request while due: told once until a rotation succeeds.
      stats.rotationFailing = true;
      this.emit({ topic: 'agent/rotation-failed', entry, previous: stats.settled, at: this.now() });
    }
  }

  /** Derives the entry again, publishes a change, tells a transition; returns the entry of a running config node. */
  private update(id: string): HealthEntry | undefined {
    const tracked = this.tracked.get(id);
    if (!tracked) return undefined;
    const stats = this.statsOf(id);
    const now = this.now();
    const entry = this.derive(id, tracked);
    const before = stats.settled;
    const after = settle(entry.state, before);
    stats.settled = after;
    const topic: HealthTopic | undefined = transitionTopic(before, after, !!tracked.source.agent);
    if (topic) {
      this.seq += 1;
      const event: HealthEvent = { topic, entry, previous: before, at: now };
      stats.lastTransition = { event, seq: this.seq };
      this.emit(event);
    }
    if (!tracked.closed) {
      this.publish(id, entry, stats, now);
      this.scheduleClock(id, entry, stats, now);
    }
    for (const listener of this.listeners) call(() => listener.entry?.(entry));
    return entry;
  }

  private emit(event: HealthEvent): void {
    for (const listener of this.listeners) call(() => listener.event?.(event));
  }

  private publish(id: string, entry: HealthEntry, stats: Stats, now: number): void {
    const view = publishedView(entry);
    const counts = JSON.stringify(entry.counts);
    if (view !== stats.view) {
      this.send(entry, stats, now);
      return;
    }
    if (counts === stats.countsText || stats.countsTimer !== undefined) return;
    if (stats.lastPublishAt + COUNTS_COALESCE_MS <= now) this.send(entry, stats, now);
    else this.countsChanged(id, stats);
  }

  /** Counter-only change: published with the next change of the view, or at most COUNTS_COALESCE_MS after the last publish. */
  private countsChanged(id: string, stats: Stats): void {
    if (stats.countsTimer !== undefined) return;
    const wait = stats.lastPublishAt + COUNTS_COALESCE_MS - this.now();
    if (wait <= 0) {
      this.update(id);
      return;
    }
    stats.countsTimer = this.timers.set(() => {
      stats.countsTimer = undefined;
      this.update(id);
    }, wait);
  }

  private send(entry: HealthEntry, stats: Stats, now: number): void {
    stats.view = publishedView(entry);
    stats.countsText = JSON.stringify(entry.counts);
    stats.lastPublishAt = now;
    if (stats.countsTimer !== undefined) {
      this.timers.clear(stats.countsTimer);
      stats.countsTimer = undefined;
    }
    call(() => this.publisher?.(entry));
  }

  /**
   * The state also changes with time alone (a token expires, a back-off
   * ends): derived again at the next such moment, so nothing needs polling.
   */
  private scheduleClock(id: string, entry: HealthEntry, stats: Stats, now: number): void {
    if (stats.clockTimer !== undefined) this.timers.clear(stats.clockTimer);
    stats.clockTimer = undefined;
    const moments = [entry.tokenExpiresAt, entry.retryAt].map((t) => (t ? Date.parse(t) : Number.NaN)).filter((t) => t > now);
    if (moments.length === 0) return;
    stats.clockTimer = this.timers.set(
      () => {
        stats.clockTimer = undefined;
        this.update(id);
      },
      Math.min(...moments) - now + 1,
    );
  }
}

/** A listener's or publisher's failure is its own: the next one still runs. */
function call(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored: health reporting never breaks token requests
  }
}
