import { DAY_MS, DEFAULT_WARNING_WINDOW_MS, expiryWarnings, type HealthEvent, nextWarningCheck } from '../health/events.js';
import type { HealthEntry } from '../health/model.js';
import type { Node, NodeAPI, NodeDefinition } from './node-red.js';
import { runtimeOf } from './runtime.js';

/**
 * "auth events": one message per change of a credential's state (the topics
 * of src/health/events.ts, documented in docs/health.md), for all of this
 * package's config nodes or the selected ones, and a warning before an
 * agent's client secret runs out. The payload is the health entry: no
 * secret in it.
 */
const HOUR_MS = 60 * 60 * 1000;
/** The warnings are looked at again at least this often (a timer, never a poll of the platform). */
const WARNING_CHECK_MS = HOUR_MS;

interface EventsNodeApi extends NodeAPI {
  events?: { on(event: string, listener: () => void): void; removeListener(event: string, listener: () => void): void };
}

export default function register(RED: EventsNodeApi): void {
  runtimeOf(RED);
  RED.nodes.registerType('iiot-auth-events', function (this: Node, definition: NodeDefinition) {
    RED.nodes.createNode(this, definition);
    const { health } = runtimeOf(RED);
    // No config node ticked: all of them (DESIGN.md: `configs`, empty for all).
    const ids = idsOf(definition.configs);
    const selected = ids.length > 0 ? new Set(ids) : undefined;
    const windowMs = warningWindowMs(definition.warnDays);
    const memory = health.memory(this.id);
    const wanted = (entry: HealthEntry) => !selected || selected.has(entry.id);
    let timer: NodeJS.Timeout | undefined;
    let started = false;

    const send = (event: HealthEvent) => {
      this.send({ topic: event.topic, payload: event.entry, ...(event.previous ? { previous: event.previous } : {}) });
    };
    const checkWarnings = () => {
      const entries = health.entries().filter(wanted);
      const now = health.now();
      for (const event of expiryWarnings(entries, now, windowMs, memory.warned)) send(event);
      if (timer) clearTimeout(timer);
      const next = nextWarningCheck(entries, now, windowMs, memory.warned);
      timer = setTimeout(checkWarnings, Math.max(1000, Math.min(WARNING_CHECK_MS, (next ?? Number.POSITIVE_INFINITY) - now))).unref();
    };
    // Once every node of the deploy runs: what happened while it started (a config node that could not) is told then.
    const start = () => {
      if (started) return;
      started = true;
      for (const event of health.untold(memory)) if (wanted(event.entry)) send(event);
      checkWarnings();
    };
    const unsubscribe = health.subscribe({
      event: (event) => {
        if (!started || !wanted(event.entry)) return;
        health.told(memory, event);
        send(event);
      },
      // An agent's secret or rotation point may have moved: warn now if due, and set the timer anew.
      entry: (entry) => {
        if (started && entry.agent && wanted(entry)) checkWarnings();
      },
    });
    if (RED.events) RED.events.on('flows:started', start);
    else setImmediate(start);

    this.on('close', (removed: boolean, done: () => void) => {
      unsubscribe();
      RED.events?.removeListener('flows:started', start);
      if (timer) clearTimeout(timer);
      if (removed) health.forget(this.id);
      done();
    });
  });
}

function idsOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** The warning window from the node's `warnDays`: a positive number of days (0.5 is 12 hours); 3 days otherwise. */
export function warningWindowMs(days: unknown): number {
  const value = typeof days === 'number' ? days : typeof days === 'string' && days.trim() ? Number(days) : Number.NaN;
  if (!Number.isFinite(value) || value <= 0) return DEFAULT_WARNING_WINDOW_MS;
  return value * DAY_MS;
}
