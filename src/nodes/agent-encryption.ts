import type { RecordStore, RecordWords } from '../core/record-store.js';
import { SealedRecordStore } from '../core/sealed-record-store.js';
import { parseSealingKeys } from '../core/sealing-keys.js';
import { AGENT_SECRET_FIELDS } from '../platforms/insights-hub-agent/state.js';
import type { NodeAPI } from './node-red.js';

/**
 * Agent records encrypted at rest (`iiotAuth.agentStore.encryption` in
 * settings.js): the secret fields of every agent's state sealed with
 * AES-256-GCM, in the file store and on Redis alike. Without the setting,
 * records are written in plain text, and sealed ones cannot be read.
 */
export const AGENT_ENCRYPTION_SETTING = 'iiotAuth.agentStore.encryption';

/** An agent store that seals what it writes (when a key is set) and opens what it reads; CONFIG_INVALID for unusable keys. */
export function sealedAgentStore(store: RecordStore, encryption: unknown, words: RecordWords, env: NodeJS.ProcessEnv = process.env): SealedRecordStore {
  return new SealedRecordStore(
    store,
    { secretFields: AGENT_SECRET_FIELDS, keys: parseSealingKeys(encryption, AGENT_ENCRYPTION_SETTING, env), keySetting: AGENT_ENCRYPTION_SETTING },
    words,
  );
}

const warned = new WeakSet<object>();

/** Says once per runtime that agent credentials on Redis are readable by whoever reads Redis. */
export function warnIfUnsealed(RED: NodeAPI, store: SealedRecordStore): void {
  if (store.currentKeyId !== undefined || !store.shared || warned.has(RED)) return;
  warned.add(RED);
  RED.log.warn(
    `iiot-auth: agent credentials are kept in ${store.where} unencrypted: whoever can read that Redis or its backups can take over every agent. Set ${AGENT_ENCRYPTION_SETTING} in settings.js (see docs/operations.md)`,
  );
}
