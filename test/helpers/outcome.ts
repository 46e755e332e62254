import assert from 'node:assert/strict';
import helper from 'node-red-node-test-helper';
import type { NodeMessage } from '../../src/nodes/node-red.js';
import type { NodeRedNode } from './flow.js';
import { deliveries, waitFor } from './wait.js';

/**
 * How a message sent into one of our nodes ended, without guessing how long
 * a second ending would take to show up: the runtime's own hooks say when a
 * node called done() for a message (onComplete), and after that the node can
 * send nothing more for it. So a test awaits the node's done, lets the
 * runtime deliver what was already sent (deliveries()), and then counts
 * outputs and errors: exactly one is the contract (action-node.ts).
 */

export interface Outcome {
  kind: 'output' | 'error';
  msg: NodeMessage;
  error?: { code: string; message: string; statusCode?: number } | undefined;
}

/** The helper nodes a flow collects outputs and Catch-node errors in. */
export interface OutcomeIds {
  out: string;
  errors: string;
}

interface Tracked {
  node: string;
  type: string;
  done: boolean;
}

interface Hooks {
  add(id: string, callback: (event: HookEvent) => void): void;
  remove(id: string): void;
}

interface HookEvent {
  msg: { _msgid?: string };
  destination?: { id: string; node?: { type?: string } };
  node?: { id: string };
}

const LABEL = 'iiotAuthTests';
/** Messages our nodes received and have not finished, by node id and message id. */
const open = new Map<string, Tracked[]>();
/** While set, every message one of our nodes receives is added here too (see capture()). */
let capturing: Tracked[] | undefined;

const key = (node: string, msgid: string | undefined) => `${node} ${msgid ?? ''}`;
const ours = (type: string | undefined) => typeof type === 'string' && type.startsWith('iiot-');

/** Installs the hooks (FlowHarness.start calls this once the runtime runs). */
export function trackEndings(): void {
  const hooks = (helper as unknown as { _RED: { hooks: Hooks } })._RED.hooks;
  hooks.remove(`*.${LABEL}`);
  open.clear();
  hooks.add(`onReceive.${LABEL}`, (event) => {
    const type = event.destination?.node?.type;
    if (!event.destination || !ours(type)) return;
    const tracked: Tracked = { node: event.destination.id, type: type!, done: false };
    const k = key(tracked.node, event.msg._msgid);
    open.set(k, [...(open.get(k) ?? []), tracked]);
    capturing?.push(tracked);
  });
  hooks.add(`onComplete.${LABEL}`, (event) => {
    if (!event.node) return;
    const k = key(event.node.id, event.msg._msgid);
    // The same message object sent twice into one node: each done() ends the oldest.
    const [first, ...rest] = open.get(k) ?? [];
    if (!first) return;
    first.done = true;
    if (rest.length) open.set(k, rest);
    else open.delete(k);
  });
}

/** Forgets unfinished messages of a flow that was unloaded (FlowHarness.unload). */
export function forgetOpenMessages(): void {
  open.clear();
}

/** Runs `send` and returns the messages our nodes received meanwhile (synchronously, or during the promise). */
async function capture(send: () => void | Promise<void>): Promise<Tracked[]> {
  const received: Tracked[] = [];
  const outer = capturing;
  capturing = received;
  try {
    await send();
  } finally {
    capturing = outer;
    outer?.push(...received);
  }
  return received;
}

/** Resolves once every one of these messages was done (output or error) and what it sent was delivered. */
async function finished(messages: Tracked[], timeoutMs: number): Promise<void> {
  await waitFor(() => messages.every((m) => m.done), {
    timeoutMs,
    what: () => `${messages.filter((m) => !m.done).length} of ${messages.length} messages to end (node ${messages.find((m) => !m.done)?.node})`,
  });
  await deliveries();
}

/**
 * Resolves once every message any of our nodes holds has ended: for flows
 * that start themselves (inject nodes), where the test sends nothing.
 */
export async function settled(timeoutMs = 15_000): Promise<void> {
  const pending = [...open.values()].flat();
  await finished(pending, timeoutMs);
}

/** Records the outputs and errors that reach a flow's two helper nodes until stop() is called. */
function listen(ids: OutcomeIds): { seen: Outcome[]; stop(): void } {
  const seen: Outcome[] = [];
  const out = helper.getNode(ids.out) as NodeRedNode;
  const errors = helper.getNode(ids.errors) as NodeRedNode;
  const onOut = (msg: NodeMessage) => seen.push({ kind: 'output', msg });
  const onError = (msg: NodeMessage) => seen.push({ kind: 'error', msg, error: msg.error as Outcome['error'] });
  out.on('input', onOut);
  errors.on('input', onError);
  return {
    seen,
    stop() {
      out.removeListener('input', onOut);
      errors.removeListener('input', onError);
    },
  };
}

/**
 * Sends one message (`send` puts it into a node) and returns how it ended,
 * after checking it ended in exactly one output or one error.
 */
export async function outcomeOf(ids: OutcomeIds, send: () => void, timeoutMs = 15_000): Promise<Outcome> {
  const listener = listen(ids);
  try {
    const messages = await capture(send);
    assert.ok(messages.length > 0, 'send() put no message into one of our nodes');
    await finished(messages, timeoutMs);
  } finally {
    listener.stop();
  }
  const { seen } = listener;
  assert.equal(seen.length, 1, `exactly one output or error, got ${seen.map((s) => s.kind).join(', ') || 'none'}`);
  return seen[0]!;
}

/**
 * Counts every output and error while `run` sends messages (any number,
 * concurrently or one by one with `next()`, the next outcome to arrive), and
 * returns them once every message it sent has ended.
 */
export async function countOutcomes(
  ids: OutcomeIds,
  run: (next: () => Promise<Outcome>) => Promise<void>,
  timeoutMs = 30_000,
): Promise<{ outputs: NodeMessage[]; errors: NodeMessage[] }> {
  const listener = listen(ids);
  const { seen } = listener;
  const next = () => {
    const from = seen.length;
    return waitFor(() => seen[from], { timeoutMs, what: 'the next output or error' });
  };
  try {
    const messages = await capture(() => run(next));
    await finished(messages, timeoutMs);
  } finally {
    listener.stop();
  }
  return {
    outputs: seen.filter((s) => s.kind === 'output').map((s) => s.msg),
    errors: seen.filter((s) => s.kind === 'error').map((s) => s.msg),
  };
}
