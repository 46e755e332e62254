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
 *   record:<id>  a hash: value (JSON), version (unique per write)
 *   lock:<id>    "<fence>:<owner>", set NX with an expiry, renewed while held
 *   fence:<id>   the counter the fences come from
 *
 * Writes are one Lua script: compare the version, check the lease (fencing),
 * set. Durability is Redis's: with AOF and `appendfsync always` a write that
 * returned survives a crash of Redis. The client (@redis/client) is loaded
 * only when this store is used.
 */
export interface RedisStoreOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// for TLS. */
  url: string;
  keyPrefix?: string;
  /** Used when the URL has none (from an environment variable, never from a flow). */
  password?: string;
  username?: string;
  /** How long an operation waits for Redis before it fails, ms. */
  timeoutMs?: number;
  /** Extra TLS options for rediss:// (a CA, say). */
  tls?: Record<string, unknown>;
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

interface Client {
  isReady: boolean;
  connect(): Promise<unknown>;
  destroy(): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
  sendCommand(args: string[]): Promise<unknown>;
}

export class RedisRecordStore implements RecordStore {
  readonly kind = 'redis';
  readonly shared = true;
  readonly where: string;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private client?: Client | undefined;
  private closed = false;

  constructor(
    private readonly options: RedisStoreOptions,
    private readonly words: RecordWords,
  ) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${words.redisSetting}.url is not a URL: write redis://host:6379 (or rediss:// for TLS)`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `${words.redisSetting}.url must start with redis:// or rediss://, not ${url.protocol}//`);
    }
    // Never the password: the URL as it may appear in a message.
    this.where = `Redis at ${url.protocol}//${url.host}${url.pathname && url.pathname !== '/' ? url.pathname : ''}`;
    this.prefix = options.keyPrefix ?? 'iiot-auth:';
    this.timeoutMs = Math.max(100, options.timeoutMs ?? 5000);
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

  async retire(id: string): Promise<void> {
    await this.command(['EVAL', RETIRE, '2', this.key('record', id), this.key('moved', id)]);
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    client?.destroy();
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
    if (this.closed) throw this.failure(`${what}: the store was closed (the node was stopped)`);
    const client = await this.ready(what);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        client.sendCommand(args),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), this.timeoutMs);
        }),
      ]);
    } catch (err) {
      const reason = err instanceof Error && err.message === 'timeout' ? `no answer within ${this.timeoutMs} ms` : describeRedisError(err);
      throw this.failure(`${what} (${reason}); the stored credentials are kept: check that Redis runs and is reachable, then try again`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The connected client, connecting on first use; reconnects go on in the background. */
  private async ready(what: string): Promise<Client> {
    const client = this.client ?? this.connect(what);
    if (client.isReady) return client;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('ready', onReady);
        reject(
          this.failure(
            `${what}: cannot connect to ${this.where} within ${this.timeoutMs} ms; the stored credentials are kept: check that Redis runs, the URL and the password (${this.words.redisSetting})`,
          ),
        );
      }, this.timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      client.once('ready', onReady);
    });
    return client;
  }

  private connect(what: string): Client {
    let redis: { createClient(options: Record<string, unknown>): Client };
    try {
      // Loaded only here: installs that keep their records in files never load it.
      redis = require('@redis/client') as typeof redis;
    } catch {
      throw this.failure(`${what}: the Redis client (@redis/client) is not installed: reinstall node-red-contrib-iiot-auth`);
    }
    const { url, password, username, tls } = this.options;
    const client = redis.createClient({
      url,
      ...(password ? { password } : {}),
      ...(username ? { username } : {}),
      // Fail at once while disconnected (the caller decides), instead of queueing for ever.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: this.timeoutMs,
        reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 4), 1000),
        ...(tls ?? {}),
      },
    });
    // Without a listener an 'error' event would crash Node-RED; failures reach the callers instead.
    client.on('error', () => undefined);
    // A failed connect reaches the first command's caller as its error.
    client.connect().catch(() => undefined);
    this.client = client;
    return client;
  }
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
