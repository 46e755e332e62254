import { HostLimiter } from '../core/host-limiter.js';
import { HttpClient, type HttpClientOptions, type TlsOptions } from '../core/http/index.js';
import { TokenEngine } from '../core/token-engine.js';
import { HealthRegistry } from '../health/registry.js';
import { RATE_LIMIT_HEADERS, SECRET_HEADERS } from '../platforms/index.js';
import { registerHealthRoutes } from './health-routes.js';
import type { HttpProxyNode, NodeAPI, NodeDefinition, TlsConfigNode } from './node-red.js';

/** The package's settings in settings.js (`iiotAuth: {...}`), read once per runtime. */
export interface IiotAuthSettings {
  /** First pause after a failed token request (ms). */
  backoffInitialMs?: number;
  /** Longest pause between failed token requests (ms). */
  backoffMaxMs?: number;
  /** Default time limit of one HTTP request (ms). */
  requestTimeoutMs?: number;
  /** Largest response body accepted (bytes). */
  maxResponseBytes?: number;
  /** Connections per origin, shared by every config node with the same TLS and proxy settings (default 64); more requests queue. */
  connectionsPerOrigin?: number;
  /** An idle connection closes after this long (ms, default 30000), whatever the server's keep-alive hint says. */
  connectionIdleMs?: number;
  /** Token requests in flight at once per token host (default 8); the rest wait in order. */
  tokenRequestsPerHost?: number;
  /** Where agent state files live; default <userDir>/iiot-auth/agents. */
  agentStateDir?: string;
  /** How long the lock of a crashed process blocks its agents (ms; the file store takes at least 2000; default 10000). */
  agentLockStaleMs?: number;
  /** Agent state on Redis instead of files: `{ redis: { url, keyPrefix, passwordEnv } }` (see agent-store.ts). */
  agentStore?: Record<string, unknown>;
  /** Where the OAuth 2.0 config nodes' logins (refresh tokens) live as files; default <userDir>/iiot-auth/oauth2. */
  oauth2StateDir?: string;
}

export function settingsOf(RED: NodeAPI): IiotAuthSettings {
  const value = RED.settings.iiotAuth;
  return value && typeof value === 'object' ? (value as IiotAuthSettings) : {};
}

/**
 * What the package keeps per Node-RED runtime, made when the runtime loads
 * its first node module of ours: the settings, the token engine (a thousand
 * messages, one token request), the limiter of token requests per host and
 * the health registry (with its admin routes), shared by every config node
 * of that runtime.
 */
export class IiotAuthRuntime {
  readonly settings: IiotAuthSettings;
  readonly engine: TokenEngine;
  /** Every config node's health (src/health), fed by the engine and the connections; its admin routes are registered with it. */
  readonly health: HealthRegistry;
  private readonly tokenRequests: HostLimiter;
  private readonly connectionsPerOrigin: number | undefined;
  private readonly connectionIdleMs: number | undefined;

  constructor(RED: NodeAPI) {
    this.settings = settingsOf(RED);
    const { backoffInitialMs, backoffMaxMs } = this.settings;
    this.health = new HealthRegistry();
    this.engine = new TokenEngine({
      observer: this.health.engineObserver,
      ...(backoffInitialMs !== undefined ? { backoffInitialMs } : {}),
      ...(backoffMaxMs !== undefined ? { backoffMaxMs } : {}),
    });
    this.tokenRequests = new HostLimiter(positiveSetting(RED, this.settings, 'tokenRequestsPerHost') ?? 8);
    this.connectionsPerOrigin = positiveSetting(RED, this.settings, 'connectionsPerOrigin');
    this.connectionIdleMs = positiveSetting(RED, this.settings, 'connectionIdleMs');
    // A runtime without an admin API (httpAdminRoot: false) has nowhere to serve them.
    if (typeof RED.httpAdmin?.get === 'function' && typeof RED.auth?.needsPermission === 'function') registerHealthRoutes(RED, this.health);
  }

  /** An HTTP client with the TLS and proxy config nodes a config node references. */
  httpClient(RED: NodeAPI, definition: NodeDefinition): HttpClient {
    const settings = this.settings;
    // Every platform's headers, not just this one's: a flow may set any of them on a request.
    const options: HttpClientOptions = {
      credentialHeaders: SECRET_HEADERS,
      rateLimitHeaders: RATE_LIMIT_HEADERS,
      secretRequests: this.tokenRequests,
    };
    if (this.connectionsPerOrigin !== undefined) options.connectionsPerOrigin = this.connectionsPerOrigin;
    if (this.connectionIdleMs !== undefined) options.idleMs = this.connectionIdleMs;
    if (settings.requestTimeoutMs !== undefined) options.timeoutMs = settings.requestTimeoutMs;
    if (settings.maxResponseBytes !== undefined) options.maxResponseBytes = settings.maxResponseBytes;
    const tlsNode = typeof definition.tls === 'string' && definition.tls ? (RED.nodes.getNode(definition.tls) as TlsConfigNode | null) : null;
    if (tlsNode) options.tls = tlsNode.addTLSOptions({}) as TlsOptions;
    const proxyNode = typeof definition.proxy === 'string' && definition.proxy ? (RED.nodes.getNode(definition.proxy) as HttpProxyNode | null) : null;
    if (proxyNode?.url) {
      options.proxy = {
        url: proxyNode.url,
        noProxy: proxyNode.noproxy ?? [],
        ...(proxyNode.credentials?.username ? { username: proxyNode.credentials.username } : {}),
        ...(proxyNode.credentials?.password ? { password: proxyNode.credentials.password } : {}),
      };
    }
    return new HttpClient(options);
  }
}

/**
 * Keyed by the runtime's admin app: Node-RED gives each node module its own
 * RED object (and its own copy of the settings), but the same admin app to
 * every module of one runtime, and a new one when a runtime starts again.
 */
const runtimes = new WeakMap<object, IiotAuthRuntime>();

/** The package's state in the runtime this RED object belongs to. */
export function runtimeOf(RED: NodeAPI): IiotAuthRuntime {
  const key: object = (RED.httpAdmin as object | undefined) ?? RED.settings;
  let runtime = runtimes.get(key);
  if (!runtime) {
    runtime = new IiotAuthRuntime(RED);
    runtimes.set(key, runtime);
  }
  return runtime;
}

type PositiveSetting = 'tokenRequestsPerHost' | 'connectionsPerOrigin' | 'connectionIdleMs';

/** A positive whole-number setting; anything else is the default, with one warning in the log saying so. */
function positiveSetting(RED: NodeAPI, settings: IiotAuthSettings, name: PositiveSetting): number | undefined {
  const value = settings[name];
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  RED.log.warn(`[iiot-auth] settings.js: iiotAuth.${name}=${JSON.stringify(value)} is not a positive whole number; the default is used`);
  return undefined;
}
