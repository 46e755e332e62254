import { randomUUID } from 'node:crypto';
import { ErrorCode, IiotAuthError } from './errors.js';
import {
  checkRecordId,
  RecordConflict,
  recordError,
  type RecordWords,
  type LockOptions,
  type RecordLease,
  type RecordStore,
  type RecordVersion,
  type StoredRecord,
} from './record-store.js';

/**
 * The record store on Redis, for several Node-RED instances (or containers
 * without a volume) sharing records. Per record id, under the key prefix:
 *
 *   record:<id>  a hash: value (JSON), version (unique per write), acknowledged (the version last acknowledged)
 *   lock:<id>    "<fence>:<owner>", set NX with an expiry, renewed while held
 *   fence:<id>   the counter the fences come from
 *
 * Writes are one Lua script: compare the version, check the lease (fencing),
 * set. Durability is Redis's: with AOF and `appendfsync always` a write that
 * returned survives a crash of Redis. With replicas (and Sentinel, which
 * promotes one when the primary fails), a write that matters is acknowledged
 * by `minReplicas` of them (`WAIT`) before anything depends on it, since
 * replication is asynchronous. The client (@redis/client) is loaded only when
 * this store is used; with Sentinel it is `createSentinel`, which finds the
 * primary, and follows a failover by itself.
 */
export interface RedisStoreOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// for TLS; without `sentinel`. */
  url?: string;
  /** The Sentinels to ask for the primary of the master group `name`; instead of `url`. */
  sentinel?: RedisSentinelOptions;
  keyPrefix?: string;
  /** Used when the URL has none (from an environment variable, never from a flow); with Sentinel, the data nodes'. */
  password?: string;
  username?: string;
  /** How long an operation waits for Redis (with Sentinel: also for a failover) before it fails, ms. */
  timeoutMs?: number;
  /** Extra TLS options for rediss:// (a CA, say). */
  tls?: Record<string, unknown>;
  /** How many replicas acknowledge a write that matters (`acknowledge`); default 1 with Sentinel, else 0. */
  minReplicas?: number;
  /** How long `acknowledge` waits for them, ms (default 2000). */
  replicaTimeoutMs?: number;
}

export interface RedisSentinelOptions {
  nodes: Array<{ host: string; port: number }>;
  /** The master group's name, as in `sentinel monitor <name> …`. */
  name: string;
  /** The Sentinels' own ACL user and password, when they have one. */
  username?: string;
  password?: string;
}

const WRITE = `
local current = redis.call('HGET', KEYS[1], 'version')
if (current or '') ~= ARGV[1] then return 'changed' end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return 'lease-lost' end
redis.call('HSET', KEYS[1], 'value', ARGV[2], 'version', ARGV[4])
return 'ok'`;

const LOCK = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. ':' .. ARGV[1], 'PX', ARGV[2])
return fence`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const RETIRE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1`;

/** Marks the record acknowledged if it is still at the version to acknowledge: a write that WAIT then covers. */
const ACKNOWLEDGE = `
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 'changed' end
redis.call('HSET', KEYS[1], 'acknowledged', ARGV[1])
return 'ok'`;

/** What the store uses of a client and of a Sentinel client alike. */
interface Client {
  isReady: boolean;
  destroy(): unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
  sendCommand(args: string[], options?: { timeout?: number }): Promise<unknown>;
  /** Sentinel only: the primary it uses now. */
  getMasterNode?(): { host: string; port: number } | undefined;
}

interface RedisModule {
  createClient(options: Record<string, unknown>): Client & { connect(): Promise<unknown> };
  createSentinel(options: Record<string, unknown>): {
    isReady: boolean;
    connect(): Promise<unknown>;
    destroy(): Promise<void>;
    on(event: string, listener: (...args: unknown[]) => void): unknown;
    once(event: string, listener: (...args: unknown[]) => void): unknown;
    off(event: string, listener: (...args: unknown[]) => void): unknown;
    sendCommand(isReadonly: boolean, args: string[], options?: { timeout?: number }): Promise<unknown>;
    getMasterNode(): { host: string; port: number } | undefined;
  };
}

export class RedisRecordStore implements RecordStore {
  readonly kind = 'redis';
  readonly shared = true;
  readonly where: string;
  readonly minReplicas: number;
  private readonly replicaTimeoutMs: number;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private client?: Client | undefined;
  /** The first connection (with Sentinel, the discovery of the primary); undefined once it is up or failed. */
  private connecting?: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly options: RedisStoreOptions,
    private readonly words: RecordWords,
  ) {
    const setting = words.redisSetting;
    if (options.sentinel) {
      const { nodes, name } = options.sentinel;
      if (options.url)
        throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${setting} has both url and sentinels: keep one (with Sentinel, the primary is found by name)`);
      if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every(isNode)) {
        throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${setting}.sentinels must list the Sentinels as [{ host: "10.0.0.5", port: 26379 }, …]`);
      }
      if (typeof name !== 'string' || !name) {
        throw new IiotAuthError(
          ErrorCode.CONFIG_INVALID,
          `${setting}.name is missing: the master group's name, as in "sentinel monitor <name> …" (often "mymaster")`,
        );
      }
      this.where = `Redis Sentinel "${name}" at ${nodes.map((n) => `${n.host}:${n.port}`).join(', ')}`;
    } else {
      let url: URL;
      try {
        url = new URL(options.url ?? '');
      } catch {
        throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${setting}.url is not a URL: write redis://host:6379 (or rediss:// for TLS)`);
      }
      if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
        throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${setting}.url must start with redis:// or rediss://, not ${url.protocol}//`);
      }
      // Never the password: the URL as it may appear in a message.
      this.where = `Redis at ${url.protocol}//${url.host}${url.pathname && url.pathname !== '/' ? url.pathname : ''}`;
    }
    this.prefix = options.keyPrefix ?? 'iiot-auth:';
    // With Sentinel an operation may meet a failover: it waits for the new primary rather than fail.
    this.timeoutMs = Math.max(100, options.timeoutMs ?? (options.sentinel ? 20_000 : 5000));
    this.minReplicas = options.minReplicas ?? (options.sentinel ? 1 : 0);
    if (!Number.isInteger(this.minReplicas) || this.minReplicas < 0) {
      throw new IiotAuthError(
        ErrorCode.CONFIG_INVALID,
        `${setting}.minReplicas must be a whole number, 0 or more (the replicas that acknowledge new credentials)`,
      );
    }
    this.replicaTimeoutMs = Math.max(10, options.replicaTimeoutMs ?? 2000);
  }

  private key(kind: 'record' | 'lock' | 'fence' | 'moved', id: string): string {
    return `${this.prefix}${kind}:${checkRecordId(id, this.words.id)}`;
  }

  private failure(message: string): IiotAuthError {
    return recordError(this.words.failureCode, message);
  }

  async read(id: string): Promise<StoredRecord | undefined> {
    const reply = (await this.command(['HMGET', this.key('record', id), 'value', 'version'])) as Array<string | null>;
    const [text, version] = reply;
    if (text === null || text === undefined || !version) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw this.failure(
        `the stored state of ${id} in ${this.where} is not valid JSON: restore Redis from a backup, or delete the key ${this.key('record', id)} to ${this.words.startOver}`,
      );
    }
    if (!value || typeof value !== 'object' || Array.isArray(value))
      throw this.failure(`the stored state of ${id} in ${this.where} is not an object: restore it from a backup`);
    return { value: value as Record<string, unknown>, version };
  }

  async version(id: string): Promise<RecordVersion | undefined> {
    const version = (await this.command(['HGET', this.key('record', id), 'version'])) as string | null;
    return version ?? undefined;
  }

  async write(id: string, value: Record<string, unknown>, expected: RecordVersion | undefined, lease?: RecordLease): Promise<RecordVersion> {
    const next = randomUUID();
    const token = lease ? (lease as RedisLease).token : '';
    const result = await this.command(
      ['EVAL', WRITE, '2', this.key('record', id), this.key('lock', id), expected ?? '', JSON.stringify(value), token, next],
      `could not save the stored state of ${id} in ${this.where}: the new credentials are not used until it is saved; check that Redis runs and is reachable`,
    );
    if (result === 'changed') throw new RecordConflict('changed', id, this.where, this.words.failureCode);
    if (result === 'lease-lost') throw new RecordConflict('lease-lost', id, this.where, this.words.failureCode);
    return next;
  }

  /**
   * On a connection of its own to the primary, opened for this and closed
   * after: WAIT counts only the writes of its own connection (a connection
   * that was re-opened to a new primary would count nothing and answer at
   * once), and blocks it while it waits. The record is marked acknowledged
   * if it is still at `version`, and WAIT waits for that write, which the
   * replicas receive after the record's.
   */
  async acknowledge(id: string, version: RecordVersion): Promise<void> {
    if (this.minReplicas === 0) return;
    const unreplicated = (why: string) =>
      recordError(
        this.words.unreplicatedCode,
        `the new credentials of ${id} are written to ${this.where} but ${why}: they are not used until ${this.minReplicas} replica(s) hold them (${this.words.redisSetting}.minReplicas), and are tried again shortly; check that the replicas run and replicate (INFO replication on the primary)`,
      );
    let ack: (Client & { connect(): Promise<unknown> }) | undefined;
    try {
      ack = await this.primaryConnection();
    } catch (err) {
      const reason = err instanceof IiotAuthError ? `no connection within ${this.timeoutMs} ms` : describeRedisError(err);
      throw unreplicated(`the primary could not be reached to wait for its replicas (${reason})`);
    }
    if (!ack) throw unreplicated('Sentinel names no primary now (a failover is under way)');
    try {
      const marked = ack.sendCommand(['EVAL', ACKNOWLEDGE, '1', this.key('record', id), version], { timeout: this.timeoutMs });
      const waited = ack.sendCommand(['WAIT', String(this.minReplicas), String(this.replicaTimeoutMs)], { timeout: this.replicaTimeoutMs + this.timeoutMs });
      const [result, replicas] = await Promise.all([marked, waited]);
      if (result !== 'ok') throw unreplicated('the record changed before the replicas acknowledged it (another instance wrote it, or a failover lost it)');
      if (typeof replicas !== 'number' || replicas < this.minReplicas) {
        throw unreplicated(`${Number(replicas) || 0} of ${this.minReplicas} replica(s) acknowledged them within ${this.replicaTimeoutMs} ms`);
      }
    } catch (err) {
      if (err instanceof IiotAuthError) throw err;
      throw unreplicated(`the wait for the replicas failed (${describeRedisError(err)})`);
    } finally {
      ack.destroy();
    }
  }

  async lock(id: string, options: LockOptions): Promise<RecordLease | undefined> {
    const ttlMs = Math.max(1000, Math.round(options.ttlMs));
    const owner = randomUUID();
    const deadline = Date.now() + Math.max(0, options.waitMs);
    for (;;) {
      const fence = await this.command(['EVAL', LOCK, '2', this.key('lock', id), this.key('fence', id), owner, String(ttlMs)]);
      if (typeof fence === 'number') return new RedisLease(this, id, fence, `${fence}:${owner}`, ttlMs);
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, Math.min(250 + Math.random() * 250, Math.max(0, deadline - Date.now()))));
    }
  }

  /** Records on Redis are shared by design: nothing to claim. */
  async claim(id: string): Promise<() => Promise<void>> {
    this.key('record', id);
    return async () => undefined;
  }

  async ids(): Promise<string[]> {
    const pattern = `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}record:*`;
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = (await this.command(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '200'])) as [string, string[]];
      for (const key of keys) found.add(key.slice(`${this.prefix}record:`.length));
      cursor = String(next);
    } while (cursor !== '0');
    return [...found].sort();
  }

  async retire(id: string): Promise<void> {
    await this.command(['EVAL', RETIRE, '2', this.key('record', id), this.key('moved', id)]);
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    await Promise.resolve(client?.destroy()).catch(() => undefined);
  }

  /** @internal used by leases */
  async renew(id: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.command(['EVAL', RENEW, '1', this.key('lock', id), token, String(ttlMs)])) === 1;
  }

  /** @internal used by leases */
  async unlock(id: string, token: string): Promise<void> {
    await this.command(['EVAL', RELEASE, '1', this.key('lock', id), token]);
  }

  /**
   * One command, bounded in time. A failure (the words' failureCode) says
   * what to do; the client's own message is not passed on (it is not the
   * user's vocabulary, and a library may quote what it was sent).
   */
  private async command(args: string[], failure?: string): Promise<unknown> {
    const what = failure ?? `${this.where} did not answer`;
    const deadline = Date.now() + this.timeoutMs;
    const client = await this.ready(what);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        // Sentinel's client waits for the new primary during a failover, within the time left.
        client.sendCommand(args, { timeout: Math.max(1, deadline - Date.now()) }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), Math.max(1, deadline - Date.now()));
        }),
      ]);
    } catch (err) {
      const reason = err instanceof Error && err.message === 'timeout' ? `no answer within ${this.timeoutMs} ms` : describeRedisError(err);
      throw this.failure(`${what} (${reason}); the stored credentials are kept: check that Redis runs and is reachable, then try again`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The connected client, connecting on first use; reconnects (and with Sentinel, failovers) go on in the background. */
  private async ready(what: string): Promise<Client> {
    // After close() no connection opens again: nothing would ever close it (an acknowledgement finishing late, say).
    if (this.closed) throw this.failure(`${what}: the store was closed (the node was stopped)`);
    const client = this.client ?? this.connect(what);
    if (this.connecting) await this.bounded(this.connecting, what);
    // With Sentinel, a command itself waits for the primary (and asks the Sentinels again).
    if (client.isReady || this.options.sentinel) return client;
    let onReady: (() => void) | undefined;
    try {
      await this.bounded(
        new Promise<void>((resolve) => {
          onReady = resolve;
          client.once('ready', onReady);
        }),
        what,
      );
    } finally {
      // A wait that timed out must not leave its listener behind: one per command while Redis is down.
      if (onReady) client.off('ready', onReady);
    }
    return client;
  }

  private async bounded(waiting: Promise<void>, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        waiting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                this.failure(
                  `${what}: cannot connect to ${this.where} within ${this.timeoutMs} ms; the stored credentials are kept: check that Redis runs, the ${this.options.sentinel ? 'Sentinels, the name' : 'URL'} and the password (${this.words.redisSetting})`,
                ),
              ),
            this.timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private redisModule(what: string): RedisModule {
    try {
      // Loaded only here: installs that keep their records in files never load it.
      return require('@redis/client') as RedisModule;
    } catch {
      throw this.failure(`${what}: the Redis client (@redis/client) is not installed: reinstall node-red-contrib-iiot-auth`);
    }
  }

  /** Options of a connection to a data node (the primary), as given or as Sentinel names it. */
  private nodeOptions(socket: Record<string, unknown>): Record<string, unknown> {
    const { password, username, tls } = this.options;
    return {
      ...(password ? { password } : {}),
      ...(username ? { username } : {}),
      // Fail at once while disconnected (the caller decides), instead of queueing for ever.
      disableOfflineQueue: true,
      socket: { connectTimeout: this.timeoutMs, ...socket, ...(tls ?? {}) },
    };
  }

  private connect(what: string): Client {
    const redis = this.redisModule(what);
    const reconnectStrategy = (retries: number) => Math.min(100 * 2 ** Math.min(retries, 4), 1000);
    const { sentinel } = this.options;
    if (sentinel) {
      const client = redis.createSentinel({
        name: sentinel.name,
        sentinelRootNodes: sentinel.nodes.map(({ host, port }) => ({ host, port })),
        nodeClientOptions: this.nodeOptions({ reconnectStrategy }),
        sentinelClientOptions: {
          ...(sentinel.password ? { password: sentinel.password } : {}),
          ...(sentinel.username ? { username: sentinel.username } : {}),
          socket: { connectTimeout: this.timeoutMs },
        },
        // A command that meets a failover asks the Sentinels again about once a second, for as long as the caller waits.
        maxCommandRediscovers: Math.ceil(this.timeoutMs / 1000) + 1,
        commandOptions: { timeout: this.timeoutMs },
      });
      // Without a listener an 'error' event would crash Node-RED; failures reach the callers instead.
      client.on('error', () => undefined);
      const wrapped: Client = {
        get isReady() {
          return client.isReady;
        },
        destroy: () => client.destroy(),
        on: (event, listener) => client.on(event, listener),
        once: (event, listener) => client.once(event, listener),
        off: (event, listener) => client.off(event, listener),
        sendCommand: (args, options) => client.sendCommand(false, args, options),
        getMasterNode: () => client.getMasterNode(),
      };
      this.client = wrapped;
      const connecting = client.connect().then(
        () => {
          if (this.connecting === connecting) this.connecting = undefined;
        },
        (err: unknown) => {
          // Sentinel's client gives up after its first attempts: the next command starts over.
          if (this.client === wrapped) {
            this.client = undefined;
            this.connecting = undefined;
          }
          throw this.failure(
            `${what}: cannot find the primary through ${this.where} (${describeRedisError(err)}); the stored credentials are kept: check that the Sentinels run and know the name`,
          );
        },
      );
      connecting.catch(() => undefined);
      this.connecting = connecting;
      return wrapped;
    }
    const { url } = this.options;
    const client = redis.createClient({ url, ...this.nodeOptions({ reconnectStrategy }) });
    // Without a listener an 'error' event would crash Node-RED; failures reach the callers instead.
    client.on('error', () => undefined);
    // A failed connect reaches the first command's caller as its error.
    client.connect().catch(() => undefined);
    this.client = client;
    return client;
  }

  /** A new connection to the primary, not reconnecting: for one `acknowledge`; undefined when Sentinel names none now. */
  private async primaryConnection(): Promise<(Client & { connect(): Promise<unknown> }) | undefined> {
    const what = `${this.where} did not answer`;
    const redis = this.redisModule(what);
    let options: Record<string, unknown>;
    if (this.options.sentinel) {
      await this.ready(what);
      const primary = this.client?.getMasterNode?.();
      if (!primary) return undefined;
      options = this.nodeOptions({ host: primary.host, port: primary.port, reconnectStrategy: false });
    } else {
      options = { url: this.options.url, ...this.nodeOptions({ reconnectStrategy: false }) };
    }
    const client = redis.createClient(options);
    client.on('error', () => undefined);
    try {
      await this.bounded(
        client.connect().then(() => undefined),
        what,
      );
    } catch (err) {
      client.destroy();
      throw err;
    }
    return client;
  }
}

function isNode(node: unknown): node is { host: string; port: number } {
  const { host, port } = (node ?? {}) as { host?: unknown; port?: unknown };
  return typeof host === 'string' && host !== '' && Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536;
}

class RedisLease implements RecordLease {
  private timer: NodeJS.Timeout;
  private renewedAt = Date.now();
  private gone = false;

  constructor(
    private readonly store: RedisRecordStore,
    readonly id: string,
    readonly fence: number,
    readonly token: string,
    private readonly ttlMs: number,
  ) {
    // Renewed three times per expiry; a holder that cannot renew in time counts the lock as lost.
    this.timer = setInterval(() => void this.renew(), Math.floor(ttlMs / 3));
    this.timer.unref();
  }

  get lost(): boolean {
    return this.gone || Date.now() - this.renewedAt >= this.ttlMs;
  }

  private async renew(): Promise<void> {
    if (this.gone) return;
    try {
      const started = Date.now();
      if (await this.store.renew(this.id, this.token, this.ttlMs)) this.renewedAt = started;
      else this.stop();
    } catch {
      // Redis unreachable: the lock lapses on its own, and `lost` says so once it has.
    }
  }

  private stop(): void {
    this.gone = true;
    clearInterval(this.timer);
  }

  async release(): Promise<void> {
    if (this.gone) return;
    this.stop();
    // An unreachable Redis frees the lock by itself: its key expires.
    await this.store.unlock(this.id, this.token).catch(() => undefined);
  }
}

function describeRedisError(err: unknown): string {
  const name = (err as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'error';
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code) return code;
  if (name === 'ClientOfflineError' || name === 'ClientClosedError') return 'not connected';
  if (name === 'SocketClosedUnexpectedlyError') return 'the connection closed';
  if (name === 'ErrorReply' || name === 'SimpleError') {
    const message = (err as Error).message;
    // Redis's own replies name the condition (NOAUTH, WRONGPASS, READONLY, OOM…), never the data.
    const word = /^[A-Z]+/.exec(message)?.[0];
    return word ? `Redis answered ${word}` : 'Redis refused the command';
  }
  return name;
}
