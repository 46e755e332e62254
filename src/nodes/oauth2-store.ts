import os from 'node:os';
import path from 'node:path';
import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { FileRecordStore } from '../core/file-record-store.js';
import type { RecordStore, RecordWords } from '../core/record-store.js';
import { SealedRecordStore } from '../core/sealed-record-store.js';
import { parseSealingKeys } from '../core/sealing-keys.js';
import { SESSION_SECRET_FIELDS } from '../platforms/oauth2-login.js';
import { OAuth2ErrorCode } from '../platforms/oauth2.js';
import { AGENT_ENCRYPTION_SETTING } from './agent-encryption.js';
import { type AgentStoreSettings, redisStore } from './agent-store.js';
import type { NodeAPI } from './node-red.js';
import { settingsOf } from './runtime.js';

/**
 * Where the OAuth 2.0 config nodes' logins (refresh tokens) are kept: the
 * agent store's settings (`iiotAuth.agentStore`: files, or Redis when
 * `redis` is set; sealed with its `encryption` key), one record per config
 * node, `oauth2-<id>`. Files go to `iiotAuth.oauth2StateDir`, by default
 * `<userDir>/iiot-auth/oauth2`. Never the flows or their credentials file,
 * which Node-RED writes only on deploy.
 */
export const OAUTH2_RECORD_WORDS: RecordWords = Object.freeze({
  owner: 'OAuth 2.0 login',
  id: 'config node id',
  startOver: 'log in again in the config dialog',
  folderSetting: 'iiotAuth.oauth2StateDir',
  redisSetting: 'iiotAuth.agentStore.redis',
  failureCode: OAuth2ErrorCode.LOGIN_STORE_ERROR,
  lockedCode: OAuth2ErrorCode.LOGIN_STORE_ERROR,
  unreplicatedCode: OAuth2ErrorCode.LOGIN_STORE_ERROR,
});

const fileStores = new Map<string, FileRecordStore>();

/**
 * The logins' keys on Redis: under the agents' prefix, in a space of their
 * own, so that what lists or re-seals agents (the iiot-auth-agents command)
 * never takes a login for an agent.
 */
export function oauth2KeyPrefix(agentPrefix: string | undefined): string {
  return `${agentPrefix ?? 'iiot-auth:'}oauth2:`;
}

export function oauth2StateDir(RED: NodeAPI): string {
  const configured = settingsOf(RED).oauth2StateDir;
  if (configured) return path.resolve(configured);
  const userDir = typeof RED.settings.userDir === 'string' && RED.settings.userDir ? RED.settings.userDir : path.join(os.homedir(), '.node-red');
  return path.join(userDir, 'iiot-auth', 'oauth2');
}

/** The store of the logins, from the settings; a misconfiguration is CONFIG_INVALID with what to fix. */
export function oauth2Store(RED: NodeAPI): { store: RecordStore; release: () => Promise<void> } {
  const settings = (settingsOf(RED).agentStore ?? {}) as AgentStoreSettings;
  const keys = parseSealingKeys(settings.encryption, AGENT_ENCRYPTION_SETTING);
  const seal = (store: RecordStore) =>
    new SealedRecordStore(store, { secretFields: SESSION_SECRET_FIELDS, keys, keySetting: AGENT_ENCRYPTION_SETTING }, OAUTH2_RECORD_WORDS);
  if (settings.use === 'redis' && !settings.redis) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      'iiotAuth.agentStore.use is "redis" but iiotAuth.agentStore.redis is not set: add { url: "redis://host:6379" } in settings.js',
    );
  }
  if (settings.redis && settings.use !== 'file') {
    const { redis, release } = redisStore({ ...settings.redis, keyPrefix: oauth2KeyPrefix(settings.redis.keyPrefix) }, OAUTH2_RECORD_WORDS);
    return { store: seal(redis), release };
  }
  const dir = oauth2StateDir(RED);
  let file = fileStores.get(dir);
  if (!file) {
    file = new FileRecordStore(dir, OAUTH2_RECORD_WORDS);
    fileStores.set(dir, file);
  }
  return { store: seal(file), release: async () => undefined };
}
