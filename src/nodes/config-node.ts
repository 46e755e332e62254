import { IiotAuthError, ErrorCode } from '../core/errors.js';
import { fingerprint, PlatformConnection } from '../core/platform-connection.js';
import { Redactor } from '../core/redact.js';
import type { TokenProvider } from '../core/token.js';
import type { Node, NodeAPI, NodeDefinition } from './node-red.js';
import { httpClientFor, sharedEngine } from './runtime.js';

/**
 * What every platform config node does: read its settings, build the
 * platform's token provider, and offer a PlatformConnection to action nodes.
 * A config that cannot be used keeps its error, which each message then
 * reports (a config node has no status of its own to show it in).
 */
export interface PlatformConfigNode extends Node {
  connection?: PlatformConnection;
  configError?: IiotAuthError;
}

export interface ProviderSetup {
  provider: TokenProvider;
  /** Every value that shapes the tokens, secrets included (they are only hashed). */
  fingerprintParts: Record<string, unknown>;
  /** Values that must never appear in any output. */
  secrets: Array<string | undefined>;
  /** `[id, secret]` pairs that travel as HTTP Basic authentication. */
  basicPairs?: Array<[string, string]>;
}

export function registerPlatformConfigNode(
  RED: NodeAPI,
  type: string,
  credentials: Record<string, { type: 'text' | 'password' }>,
  setup: (definition: NodeDefinition, credentials: Record<string, string>, node: PlatformConfigNode) => ProviderSetup,
): void {
  RED.nodes.registerType(
    type,
    function (this: PlatformConfigNode, definition: NodeDefinition) {
      RED.nodes.createNode(this, definition);
      const node = this;
      const creds: Record<string, string> = {};
      for (const [key, value] of Object.entries(node.credentials ?? {})) if (typeof value === 'string') creds[key] = value;
      try {
        const { provider, fingerprintParts, secrets, basicPairs } = setup(definition, creds, node);
        const redactor = new Redactor().add(...secrets);
        for (const [id, secret] of basicPairs ?? []) redactor.addBasic(id, secret);
        node.connection = new PlatformConnection({
          id: node.id,
          fingerprint: fingerprint({ type, tls: definition.tls, proxy: definition.proxy, ...fingerprintParts }),
          provider,
          http: httpClientFor(RED, definition),
          engine: sharedEngine(RED),
          redactor,
        });
      } catch (err) {
        node.configError =
          err instanceof IiotAuthError
            ? err
            : new IiotAuthError(
                ErrorCode.CONFIG_INVALID,
                // Never the raw message: a library's words may quote a credential.
                `the config node could not start (an unexpected ${err instanceof Error ? err.name : typeof err}): check its settings and deploy again; if it persists, report it`,
              );
        // Log once at deploy, so the problem shows even before a message arrives.
        node.warn(node.configError.message);
      }
      node.on('close', (removed: boolean, done: () => void) => {
        const closing = node.connection ? node.connection.close(removed) : Promise.resolve();
        closing.then(done, done);
      });
    },
    { credentials },
  );
}

/** A string property of a node definition, trimmed; '' when absent. */
export function textProperty(definition: NodeDefinition, key: string): string {
  const value = definition[key];
  return typeof value === 'string' ? value.trim() : '';
}
