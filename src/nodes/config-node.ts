import { IiotAuthError, ErrorCode } from '../core/errors.js';
import { fingerprint, PlatformConnection } from '../core/platform-connection.js';
import { Redactor } from '../core/redact.js';
import type { ConfigInput, PlatformDeclaration, ProviderSetup } from '../platforms/declaration.js';
import { PLATFORM_DECLARATIONS } from '../platforms/index.js';
import type { HttpClient } from '../core/http/index.js';
import type { AgentHealthSource } from '../health/registry.js';
import type { Node, NodeAPI, NodeDefinition } from './node-red.js';
import { runtimeOf } from './runtime.js';

/**
 * What every platform config node does: read its settings, build the
 * platform's token provider, and offer a PlatformConnection to action nodes.
 * A config that cannot be used keeps its error, which each message then
 * reports (a config node has no status of its own to show it in).
 */
export interface PlatformConfigNode extends Node {
  connection?: PlatformConnection;
  configError?: IiotAuthError;
  /** An agent's life cycle, for the health view (set by its set-up). */
  agentHealth?: AgentHealthSource & { rotateNow(http: HttpClient): Promise<unknown> };
}

export type { ProviderSetup };

/**
 * Registers a platform's config node from its declaration. `setup` builds the
 * provider; by default the declaration's own `configure` does.
 */
export function registerPlatformConfigNode(
  RED: NodeAPI,
  declaration: PlatformDeclaration,
  setup: (definition: NodeDefinition, credentials: Record<string, string>, node: PlatformConfigNode) => ProviderSetup = (definition, credentials) =>
    configureFromDeclaration(declaration, definition, credentials),
): void {
  const { configType: type, credentials } = declaration;
  // The runtime's state, and with it the health routes, exist as soon as a module of ours is loaded.
  runtimeOf(RED);
  RED.nodes.registerType(
    type,
    function (this: PlatformConfigNode, definition: NodeDefinition) {
      RED.nodes.createNode(this, definition);
      const { health } = runtimeOf(RED);
      let redactor = new Redactor();
      const creds: Record<string, string> = {};
      for (const [key, value] of Object.entries(this.credentials ?? {})) if (typeof value === 'string') creds[key] = value;
      try {
        const { provider, fingerprintParts, secrets, basicPairs } = setup(definition, creds, this);
        redactor = new Redactor().add(...secrets);
        for (const [id, secret] of basicPairs ?? []) redactor.addBasic(id, secret);
        this.connection = new PlatformConnection({
          id: this.id,
          fingerprint: fingerprint({ type, tls: definition.tls, proxy: definition.proxy, ...fingerprintParts }),
          provider,
          http: runtimeOf(RED).httpClient(RED, definition),
          engine: runtimeOf(RED).engine,
          redactor,
          renewal: declaration.renewal,
          observer: health.connectionObserver(this.id),
        });
      } catch (err) {
        this.configError =
          err instanceof IiotAuthError
            ? err
            : new IiotAuthError(
                ErrorCode.CONFIG_INVALID,
                // Never the raw message: a library's words may quote a credential.
                `the config node could not start (an unexpected ${err instanceof Error ? err.name : typeof err}): check its settings and deploy again; if it persists, report it`,
              );
        // Log once at deploy, so the problem shows even before a message arrives.
        this.warn(this.configError.message);
      }
      const { connection, agentHealth } = this;
      const entry = health.register({
        id: this.id,
        type,
        platform: declaration.id,
        platformLabel: declaration.label,
        name: typeof definition.name === 'string' ? definition.name : '',
        configError: this.configError,
        credential: connection?.credential,
        redact: (text) => redactor.redact(text),
        agent: agentHealth,
        renew: connection ? () => connection.renew() : undefined,
        // Then a token with the new credentials: "rotate now" ends with a token, or with the reason there is none.
        rotate: connection && agentHealth ? () => agentHealth.rotateNow(connection.http).then(() => connection.renew()) : undefined,
      });
      this.on('close', (removed: boolean, done: () => void) => {
        entry.close(removed);
        const closing = this.connection ? this.connection.close(removed) : Promise.resolve();
        closing.then(done, done);
      });
    },
    { credentials: { ...credentials } },
  );
}

/**
 * The Node-RED entry of a config node that needs nothing beyond its
 * declaration: scripts/build.js writes `nodes/<type>.js` to call this when
 * there is no src/nodes/<type>.ts, so such a platform has no node file.
 */
export function declaredConfigNode(type: string): (RED: NodeAPI) => void {
  const declaration = PLATFORM_DECLARATIONS.find((p) => p.configType === type);
  if (!declaration) throw new Error(`no platform declares the config node type ${type}: add it to src/platforms/index.ts`);
  return (RED) => registerPlatformConfigNode(RED, declaration);
}

function configureFromDeclaration(declaration: PlatformDeclaration, definition: NodeDefinition, credentials: Record<string, string>): ProviderSetup {
  if (!declaration.configure) {
    throw new IiotAuthError(ErrorCode.INTERNAL_ERROR, `the ${declaration.label} config node has no provider set-up: this is a bug, please report it`);
  }
  const input: ConfigInput = {
    text: (key) => textProperty(definition, key),
    flag: (key) => definition[key] === true || definition[key] === 'true',
    credentials,
    env: process.env,
  };
  return declaration.configure(input);
}

/** A string property of a node definition, trimmed; '' when absent. */
export function textProperty(definition: NodeDefinition, key: string): string {
  const value = definition[key];
  return typeof value === 'string' ? value.trim() : '';
}
