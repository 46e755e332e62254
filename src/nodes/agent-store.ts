import os from 'node:os';
import path from 'node:path';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { FileRecordStore } from '../core/file-record-store.js';
import { KeyedMutex, type RecordStore, type RecordWords } from '../core/record-store.js';
import { RedisRecordStore } from '../core/redis-record-store.js';
import type { SealedRecordStore } from '../core/sealed-record-store.js';
import { AgentErrorCode } from '../platforms/insights-hub-agent/errors.js';
import { sealedAgentStore, warnIfUnsealed } from './agent-encryption.js';
import type { NodeAPI } from './node-red.js';
import { settingsOf } from './runtime.js';

/**
 * Where agent state lives, from settings.js: files in the user directory (the
 * default), or Redis (`iiotAuth.agentStore.redis`), shared by every agent
 * config node of this runtime. The other store, when known, is where an
 * agent's state is copied from the first time it is missing.
 */
export interface RedisStoreSettings {
  url?: string;
  /** Redis Sentinel instead of `url`: the Sentinels to ask for the primary of the master group `name`. */
  sentinels?: Array<{ host: string; port: number }>;
  name?: string;
  /** The Sentinels' own ACL user, and the environment variable that holds their password. */
  sentinelUsername?: string;
  sentinelPasswordEnv?: string;
  keyPrefix?: string;
  /** The name of an environment variable that holds the password (when the URL has none; with Sentinel, the data nodes'). */
  passwordEnv?: string;
  username?: string;
  timeoutMs?: number;
  /** Replicas that must acknowledge new credentials before they are used (default 1 with Sentinel, else 0). */
  minReplicas?: number;
  replicaTimeoutMs?: number;
}

export interface AgentStoreSettings {
  /** Which store agents use: 'redis' when `redis` is set, else 'file'. 'file' with `redis` set moves agents back from Redis. */
  use?: 'file' | 'redis';
  redis?: RedisStoreSettings;
  /** Secrets sealed at rest: `{ key }`, `{ keyEnv }` or `{ keys: { current, previous } }` (agent-encryption.ts). */
  encryption?: unknown;
}

/** How the record stores speak of an agent's state, and the settings that configure them. */
export const AGENT_RECORD_WORDS: RecordWords = Object.freeze({
  owner: 'agent',
  id: "agent's client id",
  startOver: 'onboard again',
  folderSetting: 'iiotAuth.agentStateDir',
  redisSetting: 'iiotAuth.agentStore.redis',
  failureCode: AgentErrorCode.AGENT_STATE_ERROR,
  lockedCode: AgentErrorCode.AGENT_LOCKED,
  unreplicatedCode: AgentErrorCode.AGENT_STATE_UNREPLICATED,
});

/** One mutex per process: two nodes, or a redeploy racing a rotation, never rotate one agent twice at once. */
export const agentMutex = new KeyedMutex();

const fileStores = new Map<string, FileRecordStore>();
const redisStores = new Map<string, { store: RedisRecordStore; users: number }>();

export function agentStateDir(RED: NodeAPI): string {
  const configured = settingsOf(RED).agentStateDir;
  if (configured) return path.resolve(configured);
  const userDir = typeof RED.settings.userDir === 'string' && RED.settings.userDir ? RED.settings.userDir : path.join(os.homedir(), '.node-red');
  return path.join(userDir, 'iiot-auth', 'agents');
}

export interface AgentStores {
  store: RecordStore;
  importFrom?: RecordStore;
  /** Let go of the stores (the config node stopped): the Redis connection closes with its last user. */
  release: () => Promise<void>;
}

/** The stores an agent config node uses, from the settings; a misconfiguration is CONFIG_INVALID with what to fix. */
export function agentStores(RED: NodeAPI): AgentStores {
  const settings = (settingsOf(RED).agentStore ?? {}) as AgentStoreSettings;
  const dir = agentStateDir(RED);
  let file = fileStores.get(dir);
  if (!file) {
    file = new FileRecordStore(dir, AGENT_RECORD_WORDS);
    fileStores.set(dir, file);
  }
  const use = settings.use ?? (settings.redis ? 'redis' : 'file');
  if (use !== 'file' && use !== 'redis') {
    throw new IiotAuthError(ErrorCode.CONFIG_INVALID, `iiotAuth.agentStore.use is "${String(use)}": write "file" or "redis" in settings.js`);
  }
  if (!settings.redis) {
    if (use === 'redis')
      throw new IiotAuthError(
        ErrorCode.CONFIG_INVALID,
        'iiotAuth.agentStore.use is "redis" but iiotAuth.agentStore.redis is not set: add { url: "redis://host:6379" } in settings.js',
      );
    return { store: sealedAgentStore(file, settings.encryption, AGENT_RECORD_WORDS), release: async () => undefined };
  }
  const { redis, release } = redisStore(settings.redis);
  const [store, importFrom] = (use === 'redis' ? [redis, file] : [file, redis]).map((s) => sealedAgentStore(s, settings.encryption, AGENT_RECORD_WORDS)) as [
    SealedRecordStore,
    SealedRecordStore,
  ];
  if (use === 'redis') warnIfUnsealed(RED, store);
  return { store, importFrom, release };
}

export function redisStore(settings: RedisStoreSettings, words: RecordWords = AGENT_RECORD_WORDS): { redis: RecordStore; release: () => Promise<void> } {
  const sentinel = settings.sentinels !== undefined || settings.name !== undefined;
  if (!sentinel && (typeof settings.url !== 'string' || !settings.url)) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'iiotAuth.agentStore.redis.url is missing: set it in settings.js, e.g. "redis://127.0.0.1:6379" (rediss:// for TLS), or name the Sentinels (sentinels and name)',
    );
  }
  const password = secretFromEnv(settings.passwordEnv, 'passwordEnv', sentinel ? '' : ', or put the password in the URL');
  const sentinelPassword = secretFromEnv(settings.sentinelPasswordEnv, 'sentinelPasswordEnv', '');
  const key = JSON.stringify([
    words.owner,
    settings.url,
    settings.sentinels,
    settings.name,
    settings.sentinelUsername,
    settings.sentinelPasswordEnv,
    settings.keyPrefix,
    settings.passwordEnv,
    settings.username,
    settings.timeoutMs,
    settings.minReplicas,
    settings.replicaTimeoutMs,
  ]);
  let entry = redisStores.get(key);
  if (!entry) {
    const store = new RedisRecordStore(
      {
        ...(settings.url !== undefined ? { url: settings.url } : {}),
        ...(sentinel
          ? {
              sentinel: {
                nodes: settings.sentinels ?? [],
                name: settings.name ?? '',
                ...(settings.sentinelUsername ? { username: settings.sentinelUsername } : {}),
                ...(sentinelPassword ? { password: sentinelPassword } : {}),
              },
            }
          : {}),
        ...(settings.keyPrefix !== undefined ? { keyPrefix: settings.keyPrefix } : {}),
        ...(password ? { password } : {}),
        ...(settings.username ? { username: settings.username } : {}),
        ...(settings.timeoutMs !== undefined ? { timeoutMs: settings.timeoutMs } : {}),
        ...(settings.minReplicas !== undefined ? { minReplicas: settings.minReplicas } : {}),
        ...(settings.replicaTimeoutMs !== undefined ? { replicaTimeoutMs: settings.replicaTimeoutMs } : {}),
      },
      words,
    );
    entry = { store, users: 0 };
    redisStores.set(key, entry);
  }
  const held = entry;
  held.users += 1;
  let released = false;
  return {
    redis: held.store,
    release: async () => {
      if (released) return;
      released = true;
      held.users -= 1;
      if (held.users === 0 && redisStores.get(key) === held) {
        redisStores.delete(key);
        await held.store.close();
      }
    },
  };
}

/** A password from the environment variable a setting names; undefined when the setting is absent. */
function secretFromEnv(variable: string | undefined, setting: string, orElse: string): string | undefined {
  if (!variable) return undefined;
  const value = process.env[variable];
  if (!value) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the environment variable ${variable} (iiotAuth.agentStore.redis.${setting}) is not set: set it for Node-RED${orElse}`,
    );
  }
  return value;
}
