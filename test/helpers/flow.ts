import helper from 'node-red-node-test-helper';
import type { NodeMessage } from '../../src/nodes/node-red.js';
import type { PlatformConnection } from '../../src/core/platform-connection.js';
import { forgetOpenMessages, trackEndings } from './outcome.js';
import { TEST_BACKOFF } from './settings.js';
import { waitFor } from './wait.js';

/**
 * Drives our nodes inside a real Node-RED runtime (node-red-node-test-helper)
 * and records everything the runtime emitted — log lines, statuses, warnings,
 * errors, sent messages — so tests can search it all for secrets.
 */
helper.init(process.env.NODE_RED_PATH ? require.resolve(process.env.NODE_RED_PATH) : require.resolve('node-red'));

let counter = 0;
/** Unique node ids: the token engine is shared by the whole runtime, so tests must not share config ids by accident. */
export function uid(prefix = 'n'): string {
  counter += 1;
  return `${prefix}${process.pid.toString(36)}${counter.toString(36)}${Date.now().toString(36)}`;
}

export type FlowNode = Record<string, unknown> & { id: string; type: string };

interface Spy {
  getCalls(): Array<{ args: unknown[]; thisValue: { id?: string } }>;
}

export class FlowHarness {
  static async start(settings: Record<string, unknown> = {}): Promise<void> {
    helper.settings({ iiotAuth: { ...TEST_BACKOFF }, ...settings });
    await helper.startServer();
    trackEndings();
  }

  static async stop(): Promise<void> {
    await helper.stopServer();
  }

  /** Loads the node modules and the flow; `collect` output and catch nodes are added by the test. */
  static async load(modules: unknown[], flow: FlowNode[], credentials: Record<string, Record<string, string>> = {}): Promise<void> {
    await helper.load(modules, flow, credentials);
  }

  static async unload(): Promise<void> {
    await helper.unload();
    forgetOpenMessages();
  }

  static redeploy(flow: FlowNode[], type: 'full' | 'nodes', credentials: Record<string, Record<string, string>> = {}): Promise<void> {
    return helper.setFlows(flow, type, credentials);
  }

  static node<T = NodeRedNode>(id: string): T {
    return helper.getNode(id) as T;
  }

  static request(): ReturnType<typeof helper.request> {
    return helper.request();
  }

  /** Sends `msg` into node `id` and resolves with the one message that reaches helper node `out`. */
  static async answer(id: string, out: string, msg: Record<string, unknown>): Promise<NodeMessage> {
    const result = FlowHarness.collect(out, 1);
    FlowHarness.node(id).receive(msg);
    return (await result)[0]!;
  }

  /** Sends `msg` into node `id` and resolves with the error that the catch node wired to `errors` reports. */
  static async failure(id: string, errors: string, msg: Record<string, unknown>): Promise<{ code: string; message: string }> {
    return (await FlowHarness.answer(id, errors, msg)).error as { code: string; message: string };
  }

  /** Resolves with the next `count` messages that reach a helper node, or rejects after `timeoutMs`. */
  static collect(id: string, count: number, timeoutMs = 10_000): Promise<NodeMessage[]> {
    const node = helper.getNode(id) as NodeRedNode;
    const received: NodeMessage[] = [];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        node.removeListener('input', onInput);
        reject(new Error(`${id} received ${received.length} of ${count} messages in ${timeoutMs} ms`));
      }, timeoutMs);
      const onInput = (msg: NodeMessage) => {
        received.push(msg);
        if (received.length === count) {
          clearTimeout(timer);
          node.removeListener('input', onInput);
          resolve(received);
        }
      };
      node.on('input', onInput);
    });
  }

  /**
   * Resolves once the config node's credential is out of its back-off after a
   * failed token request: the token engine's own retry time, not a guess at it.
   */
  static async backoffOver(configId: string): Promise<void> {
    const { connection } = FlowHarness.node<{ connection: PlatformConnection }>(configId);
    await waitFor(() => connection.credential.state.state !== 'backoff', {
      timeoutMs: 30_000,
      what: () => `the back-off of ${configId} to end: ${JSON.stringify(connection.credential.state)}`,
    });
  }

  /** Statuses the node with this id has shown, oldest first. */
  static statuses(id: string): Record<string, unknown>[] {
    const spy = helper._NodePrototype.status as unknown as Spy;
    return spy
      .getCalls()
      .filter((call) => call.thisValue.id === id)
      .map((call) => call.args[0] as Record<string, unknown>);
  }

  /**
   * Everything the runtime emitted while the flow ran, as one string: the
   * log (info, warn, error), every Node method call (status, warn, error, log,
   * send), and the flow configuration Node-RED would save to flows.json.
   */
  static emitted(): string {
    const parts: string[] = [];
    const logSpy = helper.log() as unknown as Spy;
    for (const call of logSpy.getCalls()) parts.push(safeStringify(call.args));
    for (const method of ['log', 'status', 'warn', 'error', 'debug', 'trace', 'send']) {
      const spy = (helper._NodePrototype as unknown as Record<string, Spy>)[method]!;
      for (const call of spy.getCalls()) parts.push(safeStringify(call.args));
    }
    parts.push(safeStringify(helper._redNodes.getFlows()));
    return parts.join('\n');
  }

  /** The places where any of the secrets occur in what the runtime emitted. */
  static leaks(secrets: string[]): string[] {
    const text = FlowHarness.emitted();
    const forms = secrets.flatMap((s) => [s, Buffer.from(s).toString('base64'), encodeURIComponent(s)]);
    return forms
      .filter((form) => form.length >= 6 && text.includes(form))
      .map((form) => {
        const at = text.indexOf(form);
        return `…${text.slice(Math.max(0, at - 80), at)}[SECRET]${text.slice(at + form.length, at + form.length + 40)}…`;
      });
  }
}

export interface NodeRedNode {
  id: string;
  receive(msg: NodeMessage): void;
  on(event: string, listener: (...args: any[]) => void): void;
  removeListener(event: string, listener: (...args: any[]) => void): void;
  connection?: unknown;
}

function safeStringify(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, v: unknown) => {
    if (Buffer.isBuffer(v)) return v.toString('utf8');
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return Buffer.from((v as { data: number[] }).data).toString('utf8');
    }
    if (v instanceof Error) return { ...v, message: v.message, stack: v.stack };
    if (v && typeof v === 'object') {
      if (seen.has(v)) return '[circular]';
      seen.add(v);
      // A Node instance (it has a _flow): its identity is enough; the flow graph is huge and cyclic.
      if ('_flow' in v) {
        const { id, type, name } = v as { id?: string; type?: string; name?: string };
        return { id, type, name };
      }
    }
    return v;
  });
}
