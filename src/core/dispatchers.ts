import { createHash } from 'node:crypto';
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';

/**
 * Connection pools shared by everything that reaches an origin the same way:
 * config nodes with the same TLS, proxy and connection settings share one
 * undici agent (one pool per origin inside it), so a thousand credentials on
 * one platform use its per-origin connection limit, not a pool each. Counted
 * references: the last client to let go closes the agent, so a deleted or
 * changed config node releases what only it used.
 */
export interface DispatcherOptions {
  /** TLS options for the connection (CA, client certificate…) and the connect timeout. */
  connect: Record<string, unknown>;
  proxy?: { url: string; noProxy: string; token?: string };
  /** Connections per origin; more requests queue. */
  connections: number;
  /** An idle connection is closed after this long, whatever the server's keep-alive hint says. */
  idleMs: number;
}

interface Shared {
  dispatcher: Dispatcher;
  users: number;
}

const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY'];

export class DispatcherRegistry {
  private readonly shared = new Map<string, Shared>();

  /** The shared dispatcher for these options; call release() with the key when done. */
  acquire(options: DispatcherOptions): { key: string; dispatcher: Dispatcher } {
    const key = keyOf(options);
    let entry = this.shared.get(key);
    if (!entry) {
      entry = { dispatcher: create(options), users: 0 };
      this.shared.set(key, entry);
    }
    entry.users++;
    return { key, dispatcher: entry.dispatcher };
  }

  /** Lets go of one reference; the last one closes the agent (requests in flight finish first). */
  async release(key: string): Promise<void> {
    const entry = this.shared.get(key);
    if (!entry) return;
    if (--entry.users > 0) return;
    this.shared.delete(key);
    // No one uses this pool any more: a failed close only concerns sockets being torn down.
    await entry.dispatcher.close().catch(() => undefined);
  }

  /** How many agents are open (for tests and diagnostics). */
  get size(): number {
    return this.shared.size;
  }
}

/** The registry of this process: every runtime's config nodes share it. */
export const sharedDispatchers = new DispatcherRegistry();

function create(options: DispatcherOptions): Dispatcher {
  const common = {
    connect: options.connect,
    connections: options.connections,
    keepAliveTimeout: options.idleMs,
    keepAliveMaxTimeout: options.idleMs,
  };
  const { proxy } = options;
  if (proxy) {
    return new EnvHttpProxyAgent({
      ...common,
      requestTls: options.connect,
      httpProxy: proxy.url,
      httpsProxy: proxy.url,
      noProxy: proxy.noProxy,
      ...(proxy.token ? { token: proxy.token } : {}),
    });
  }
  // A proxy from the environment needs its per-request look-up (no_proxy);
  // without one, a plain agent skips it on every request.
  if (PROXY_VARIABLES.some((name) => process.env[name])) return new EnvHttpProxyAgent({ ...common, requestTls: options.connect });
  return new Agent(common);
}

/** The options as a digest: certificates and keys may be long and secret; the key holds neither. */
function keyOf(options: DispatcherOptions): string {
  const env = `${PROXY_VARIABLES.map((name) => process.env[name] ?? '').join('\n')}\n${process.env.no_proxy ?? process.env.NO_PROXY ?? ''}`;
  const canonical = JSON.stringify([sorted(options.connect), options.proxy ?? null, options.connections, options.idleMs, env]);
  return createHash('sha256').update(canonical).digest('hex');
}

function sorted(value: Record<string, unknown>): [string, unknown][] {
  return Object.keys(value)
    .sort()
    .map((key) => {
      const v = value[key];
      return [key, Buffer.isBuffer(v) ? v.toString('base64') : Array.isArray(v) ? v.map((x) => (Buffer.isBuffer(x) ? x.toString('base64') : x)) : v];
    });
}
