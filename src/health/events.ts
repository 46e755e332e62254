import type { HealthEntry, HealthState } from './model.js';

/**
 * The events a flow can act on (the `auth events` node): one per change of a
 * credential's state, never one for a repeat. `renewing` is a moment, not a
 * state a flow cares about: a transition is measured between the settled
 * states around it.
 */
export type HealthTopic =
  | 'token/recovered'
  | 'token/backing-off'
  | 'token/failing'
  | 'token/locked-out'
  | 'token/not-configured'
  | 'agent/locked-out'
  | 'agent/rotated'
  | 'agent/rotation-failed'
  | 'agent/secret-expiring';

export interface HealthEvent {
  topic: HealthTopic;
  entry: HealthEntry;
  /** The settled state before; undefined for the first state a credential had. */
  previous: SettledState | undefined;
  /** Epoch ms. */
  at: number;
}

/** Every topic with what it means: the node's help and docs/health.md say the same. */
export const HEALTH_TOPICS: Readonly<Record<HealthTopic, string>> = Object.freeze({
  'token/recovered': 'a token was obtained again after a problem (backing-off, failing, locked-out, not-configured)',
  'token/backing-off': 'a renewal failed; the current token still works until it expires, the engine retries',
  'token/failing': 'token requests fail and no usable token is left: messages fail',
  'token/locked-out': 'the platform refuses the credentials for good (401, invalid_client): fix them and deploy',
  'token/not-configured': 'the config node could not start (its settings or credentials): fix them and deploy',
  'agent/locked-out': 'the agent is locked out: every registration refused, the secret expired, the IAT used, or offboarded',
  'agent/rotated': "the agent's keys were rotated",
  'agent/rotation-failed': 'a rotation failed (the current credentials still work until they expire); sent once until a rotation succeeds',
  'agent/secret-expiring':
    "the agent's client secret expires within the warning window and no rotation will renew it in time (its rotation is due but has not happened, say an idle agent, or it cannot rotate); at most once a day per agent",
});

export type SettledState = Exclude<HealthState, 'renewing'>;

/** The settled state after `state`: renewing keeps the one before (a first one counts as ok). */
export function settle(state: HealthState, before: SettledState | undefined): SettledState {
  return state === 'renewing' ? (before ?? 'ok') : state;
}

/** The topic of a change of settled state, or undefined when there is nothing to tell. */
export function transitionTopic(before: SettledState | undefined, after: SettledState, isAgent: boolean): HealthTopic | undefined {
  if (before === after) return undefined;
  switch (after) {
    case 'ok':
      return before === undefined ? undefined : 'token/recovered';
    case 'backing-off':
      return 'token/backing-off';
    case 'failing':
      return 'token/failing';
    case 'locked-out':
      return isAgent ? 'agent/locked-out' : 'token/locked-out';
    case 'not-configured':
      return 'token/not-configured';
  }
}

export const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_WARNING_WINDOW_MS = 3 * DAY_MS;

/**
 * The `agent/secret-expiring` warnings of one events node. An agent whose
 * client secret expires within the window (and has not expired yet) is
 * warned about once its rotation, which would renew the secret, is due and
 * has not happened (an idle agent takes no tokens, so nothing rotates it),
 * or when it cannot rotate; then not again for a day. A secret the rotation
 * will renew in time is no news. `warned` is kept by the caller across
 * redeploys of the node.
 */
export function expiryWarnings(entries: readonly HealthEntry[], now: number, windowMs: number, warned: Map<string, number>): HealthEvent[] {
  const events: HealthEvent[] = [];
  for (const entry of entries) {
    const from = warningFrom(entry, windowMs);
    if (from === undefined || now < from || now >= expiryOf(entry)) continue;
    const last = warned.get(entry.id);
    if (last !== undefined && now - last < DAY_MS) continue;
    warned.set(entry.id, now);
    events.push({ topic: 'agent/secret-expiring', entry, previous: undefined, at: now });
  }
  return events;
}

function expiryOf(entry: HealthEntry): number {
  return entry.agent?.clientSecretExpiresAt ? Date.parse(entry.agent.clientSecretExpiresAt) : Number.NaN;
}

/** From when a warning is due: the window's start, or the rotation point when that is later. */
function warningFrom(entry: HealthEntry, windowMs: number): number | undefined {
  const expires = expiryOf(entry);
  if (!Number.isFinite(expires)) return undefined;
  const rotateAt = entry.agent?.rotateAt ? Date.parse(entry.agent.rotateAt) : Number.NaN;
  return Math.max(expires - windowMs, Number.isFinite(rotateAt) ? rotateAt : Number.NEGATIVE_INFINITY);
}

/** When the next warning could fall due (epoch ms): a secret entering its window, or a day after a warning. */
export function nextWarningCheck(entries: readonly HealthEntry[], now: number, windowMs: number, warned: Map<string, number>): number | undefined {
  let next: number | undefined;
  const consider = (at: number) => {
    if (at > now && (next === undefined || at < next)) next = at;
  };
  for (const entry of entries) {
    const from = warningFrom(entry, windowMs);
    if (from === undefined || expiryOf(entry) <= now) continue;
    consider(from);
    const last = warned.get(entry.id);
    if (last !== undefined) consider(last + DAY_MS);
  }
  return next;
}
