import { HostLimiter } from '../core/host-limiter.js';
import { HttpClient, type HttpClientOptions, type TlsOptions } from '../core/http/index.js';
import { TokenEngine } from '../core/token-engine.js';
import { RATE_LIMIT_HEADERS, SECRET_HEADERS } from '../platforms/index.js';
import type { HttpProxyNode, NodeAPI, NodeDefinition, TlsConfigNode } from './node-red.js';

/**
 * Process-wide state of the package inside Node-RED: the one token engine and
 * the settings from settings.js (`iiotAuth: {...}`), read once.
 */
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
}

let engine: TokenEngine | undefined;
/** The settings the engine was made with: a runtime started with other settings (tests start several) gets its own. */
let engineSettings = '';

export function settingsOf(RED: NodeAPI): IiotAuthSettings {
  const value = RED.settings.iiotAuth;
  return value && typeof value === 'object' ? (value as IiotAuthSettings) : {};
}

/** The engine every node of this runtime shares: a thousand messages, one token request. */
export function sharedEngine(RED: NodeAPI): TokenEngine {
  const settings = settingsOf(RED);
  const key = JSON.stringify([settings.backoffInitialMs, settings.backoffMaxMs]);
  if (!engine || key !== engineSettings) {
    engineSettings = key;
    engine = new TokenEngine({
      ...(settings.backoffInitialMs !== undefined ? { backoffInitialMs: settings.backoffInitialMs } : {}),
      ...(settings.backoffMaxMs !== undefined ? { backoffMaxMs: settings.backoffMaxMs } : {}),
    });
  }
  return engine;
}

let limiter: HostLimiter | undefined;

/** The limiter of token requests per host every config node of this runtime shares. */
function tokenRequestLimiter(RED: NodeAPI): HostLimiter {
  const wanted = positiveSetting(RED, 'tokenRequestsPerHost') ?? 8;
  if (!limiter || limiter.limit !== wanted) limiter = new HostLimiter(wanted);
  return limiter;
}

const warned = new Set<string>();

/** A positive whole-number setting; anything else is the default, with one warning in the log saying so. */
function positiveSetting(RED: NodeAPI, name: 'tokenRequestsPerHost' | 'connectionsPerOrigin' | 'connectionIdleMs'): number | undefined {
  const value = settingsOf(RED)[name];
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  const text = `iiotAuth.${name}=${JSON.stringify(value)}`;
  if (!warned.has(text)) {
    warned.add(text);
    RED.log.warn(`[iiot-auth] settings.js: ${text} is not a positive whole number; the default is used`);
  }
  return undefined;
}

/** An HTTP client with the TLS and proxy config nodes a config node references. */
export function httpClientFor(RED: NodeAPI, definition: NodeDefinition): HttpClient {
  const settings = settingsOf(RED);
  // Every platform's headers, not just this one's: a flow may set any of them on a request.
  const options: HttpClientOptions = {
    credentialHeaders: SECRET_HEADERS,
    rateLimitHeaders: RATE_LIMIT_HEADERS,
    secretRequests: tokenRequestLimiter(RED),
  };
  const connections = positiveSetting(RED, 'connectionsPerOrigin');
  if (connections !== undefined) options.connectionsPerOrigin = connections;
  const idleMs = positiveSetting(RED, 'connectionIdleMs');
  if (idleMs !== undefined) options.idleMs = idleMs;
  if (settings.requestTimeoutMs !== undefined) options.timeoutMs = settings.requestTimeoutMs;
  if (settings.maxResponseBytes !== undefined) options.maxResponseBytes = settings.maxResponseBytes;
  const tlsNode = typeof definition.tls === 'string' && definition.tls ? (RED.nodes.getNode(definition.tls) as TlsConfigNode | null) : null;
  if (tlsNode) options.tls = tlsNode.addTLSOptions({}) as TlsOptions;
  const proxyNode =
    typeof definition.proxy === 'string' && definition.proxy ? (RED.nodes.getNode(definition.proxy) as HttpProxyNode | null) : null;
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
