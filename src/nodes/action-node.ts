import { ErrorCode, IiotAuthError, isIiotAuthError } from '../core/errors.js';
import type { PlatformConnection } from '../core/platform-connection.js';
import { allErrorCodes } from '../platforms/error-codes.js';
import type { PlatformConfigNode } from './config-node.js';
import type { Node, NodeAPI, NodeDefinition, NodeMessage } from './node-red.js';
import { isPlatformId, PLATFORMS, type PlatformId } from './platforms.js';

/**
 * What every action node shares: finding its platform's connection, turning
 * each input message into exactly one send or one done(err), and a short
 * status. Node files stay thin: read config, call core, send.
 */

/** Messages shared by all nodes live in the token node's catalog. */
const COMMON = 'node-red-contrib-iiot-auth/iiot-token:common';

export interface Platform {
  id: PlatformId;
  connection: PlatformConnection;
}

/** The connection of the config node the action node references, or a clear error. */
export function resolvePlatform(RED: NodeAPI, definition: NodeDefinition, allowed?: readonly PlatformId[]): Platform {
  const id = definition.platform;
  if (!isPlatformId(id) || (allowed && !allowed.includes(id))) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `platform "${String(id)}" is not supported here: choose one of ${(allowed ?? Object.keys(PLATFORMS)).join(', ')}`,
    );
  }
  const { property, label } = PLATFORMS[id];
  const configId = definition[property];
  const config = typeof configId === 'string' && configId ? (RED.nodes.getNode(configId) as PlatformConfigNode | null) : null;
  if (!config) {
    throw new IiotAuthError(ErrorCode.CONFIG_MISSING, `no ${label} config node is selected: open this node and choose or add one`);
  }
  if (config.configError) throw config.configError;
  if (!config.connection) {
    throw new IiotAuthError(ErrorCode.CONFIG_MISSING, `the ${label} config node is not ready: deploy again, and check the log`);
  }
  return { id, connection: config.connection };
}

/** Redacts with the secrets of the node's config node, when it has one. */
export function redactorFor(RED: NodeAPI, definition: NodeDefinition): (text: string) => string {
  return (text) => {
    try {
      return resolvePlatform(RED, definition).connection.redact(text);
    } catch {
      return text;
    }
  };
}

/** The status codes the catalog has a short text for: every error code, the core's and the platforms'. */
const STATUS_CODES: ReadonlySet<string> = new Set(allErrorCodes().map((c) => c.code));

/** The code of an error: ours, or the public copy handleInput makes of it. */
function codeOf(err: unknown): string | undefined {
  if (isIiotAuthError(err)) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Status under 20 characters: green when authenticated, yellow while
 * fetching, red with the reason. The text is a catalog key, as core nodes
 * send (node-red:common.status.connected): the editor translates it into its
 * user's language; the runtime never needs to.
 */
export class StatusReporter {
  private current = '';
  constructor(private readonly node: Node) {}

  // Each checks first whether the status changes: the common case, once per message, costs a comparison.
  fetching(): void {
    if (this.current !== 'fetching') this.show('fetching', { fill: 'yellow', shape: 'ring', text: `${COMMON}.status.fetching` });
  }

  authenticated(): void {
    if (this.current !== 'ok') this.show('ok', { fill: 'green', shape: 'dot', text: `${COMMON}.status.authenticated` });
  }

  /** An API answer that is not 2xx: the message goes on, the status says what came back. */
  httpStatus(statusCode: number): void {
    if (statusCode < 400) {
      this.authenticated();
      return;
    }
    this.show(`http-${statusCode}`, { fill: 'red', shape: 'ring', text: `HTTP ${statusCode}` });
  }

  error(err: unknown): void {
    const found = codeOf(err);
    const code = found && STATUS_CODES.has(found) ? found : ErrorCode.INTERNAL_ERROR;
    this.show(`error-${code}`, { fill: 'red', shape: 'ring', text: `${COMMON}.status.${code}` });
  }

  clear(): void {
    this.show('', {});
  }

  private show(state: string, status: Parameters<Node['status']>[0]): void {
    if (state === this.current) return;
    this.current = state;
    this.node.status(status);
  }
}

export type InputHandler = (msg: NodeMessage, send: (msg: NodeMessage) => void) => Promise<void>;

/**
 * Runs the handler for each message; every message ends in exactly one
 * send + done() or one done(err). The error handed to Node-RED is a fresh one:
 * its message redacted, its code kept, no cause chain that could carry a
 * secret to a Catch node.
 */
export function handleInput(node: Node, status: StatusReporter, handler: InputHandler, redact: (text: string) => string): void {
  node.on('input', (msg, send, done) => {
    let settled = false;
    handler(msg, (out) => send(out))
      .then(
        () => {
          settled = true;
          done();
        },
        (err: unknown) => {
          settled = true;
          const safe = toPublicError(err, redact);
          status.error(safe);
          done(safe);
        },
      )
      .catch((err: unknown) => {
        // send() or done() itself threw (a bug downstream); never let it escape as an unhandled rejection.
        if (!settled) done(toPublicError(err, redact));
        else node.error(toPublicError(err, redact).message);
      });
  });
  node.on('close', (_removed: boolean, done: () => void) => {
    status.clear();
    done();
  });
}

export interface PublicError extends Error {
  code: string;
  statusCode?: number;
}

export function toPublicError(err: unknown, redact: (text: string) => string): PublicError {
  const message = redact(isIiotAuthError(err) ? err.message : unexpected(err));
  const out = new Error(message) as PublicError;
  out.name = 'IiotAuthError';
  out.code = isIiotAuthError(err) ? err.code : ErrorCode.INTERNAL_ERROR;
  if (isIiotAuthError(err) && err.statusCode !== undefined) out.statusCode = err.statusCode;
  return out;
}

/**
 * An error the package did not foresee: its type and system code, never its
 * raw message (a library's or Node.js's words, which may quote anything).
 */
function unexpected(err: unknown): string {
  const name = err instanceof Error ? err.name : typeof err;
  const code = (err as { code?: unknown } | null)?.code;
  return `an unexpected ${name}${typeof code === 'string' && /^[A-Z_0-9]{2,40}$/.test(code) ? ` (${code})` : ''} stopped this message: this is a bug; please report it with what the flow did`;
}
