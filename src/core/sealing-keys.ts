import { createHash, createHmac } from 'node:crypto';
import { ErrorCode, IiotAuthError } from './errors.js';

/**
 * The keys that seal records at rest (sealed-record-store.ts), from a setting
 * in settings.js:
 *
 *   { key: '<32 bytes, base64 or hex>' }            one key
 *   { keyEnv: 'NAME' }                               the key from an environment variable
 *   { keys: { current: { id, key | keyEnv },        a new key, while records sealed
 *             previous: [{ id, key | keyEnv }] } }   under older ones still open
 *
 * An `id` is optional: without one, a key is named by its fingerprint, so the
 * key of `{ key }` needs no id when it moves to `previous`. Key text is never
 * quoted in an error.
 */
export interface SealingKey {
  readonly id: string;
  readonly key: Buffer;
  /** A check value of the key: tells "a different key under this id" from "the record was changed". */
  readonly check: string;
}

export interface SealingKeys {
  /** Seals every write. */
  readonly current: SealingKey;
  /** Opens records sealed before the current key was introduced. */
  readonly previous: readonly SealingKey[];
}

const HOW_TO_MAKE_ONE = `node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`;

/** The keys from the setting's value; undefined when the setting is absent. CONFIG_INVALID says what to write. */
export function parseSealingKeys(value: unknown, setting: string, env: NodeJS.ProcessEnv = process.env): SealingKeys | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`${setting} must be an object: write { key: '…' }, { keyEnv: 'NAME' } or { keys: { current: {…}, previous: [{…}] } } in settings.js`);
  }
  const settings = value as Record<string, unknown>;
  let keys: SealingKeys;
  if (settings.keys !== undefined) {
    if (settings.key !== undefined || settings.keyEnv !== undefined) {
      throw invalid(`${setting} has both "keys" and "key"/"keyEnv": write one of them (the old key goes into keys.previous)`);
    }
    const list = settings.keys as Record<string, unknown> | null;
    if (!list || typeof list !== 'object' || Array.isArray(list) || !list.current) {
      throw invalid(`${setting}.keys must be { current: { id, key }, previous: [{ id, key }] }: the current key is missing`);
    }
    if (list.previous !== undefined && !Array.isArray(list.previous)) throw invalid(`${setting}.keys.previous must be a list: [{ id, key }, …]`);
    const previous = ((list.previous as unknown[] | undefined) ?? []).map((entry, i) => oneKey(entry, `${setting}.keys.previous[${i}]`, env));
    keys = { current: oneKey(list.current, `${setting}.keys.current`, env), previous };
  } else {
    keys = { current: oneKey(settings, setting, env), previous: [] };
  }
  const seen = new Map<string, SealingKey>();
  for (const key of [keys.current, ...keys.previous]) {
    const other = seen.get(key.id);
    if (other && !other.key.equals(key.key)) throw invalid(`${setting} names two different keys "${key.id}": give each key its own id`);
    seen.set(key.id, key);
  }
  return keys;
}

/** The keys by id, the current one included. */
export function keysById(keys: SealingKeys | undefined): Map<string, SealingKey> {
  return new Map(keys ? [keys.current, ...keys.previous].map((k) => [k.id, k]) : []);
}

function oneKey(value: unknown, where: string, env: NodeJS.ProcessEnv): SealingKey {
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw invalid(`${where} must be an object: { id: 'k2', key: '…' } or { id: 'k2', keyEnv: 'NAME' }`);
  const entry = value as Record<string, unknown>;
  let text: unknown;
  let from = `${where}.key`;
  if (entry.keyEnv !== undefined) {
    if (entry.key !== undefined) throw invalid(`${where} has both "key" and "keyEnv": write one of them`);
    if (typeof entry.keyEnv !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(entry.keyEnv)) {
      throw invalid(`${where}.keyEnv must name an environment variable (letters, digits, "_")`);
    }
    text = env[entry.keyEnv];
    from = `the environment variable ${entry.keyEnv} (${where}.keyEnv)`;
    if (text === undefined || text === '') throw invalid(`${from} is not set: set it for Node-RED to the key (${HOW_TO_MAKE_ONE} makes one)`);
  } else {
    text = entry.key;
    if (text === undefined) throw invalid(`${where} has no key: write key: '<32 random bytes as base64>' or keyEnv: 'NAME' (${HOW_TO_MAKE_ONE} makes one)`);
  }
  const key = keyBytes(text);
  if (!key) {
    throw invalid(`${from} is not a key: it must be 32 random bytes written as base64 (44 characters) or hex (64 characters); ${HOW_TO_MAKE_ONE} makes one`);
  }
  let id: string;
  if (entry.id === undefined) id = fingerprint(key);
  else if (typeof entry.id === 'string' && /^[A-Za-z0-9._-]{1,40}$/.test(entry.id)) id = entry.id;
  else throw invalid(`${where}.id must be 1 to 40 letters, digits, ".", "_" or "-"`);
  return { id, key, check: createHmac('sha256', key).update('iiot-auth sealed record key check').digest('base64url').slice(0, 16) };
}

/** 32 bytes from hex or base64 (or base64url) text; undefined for anything else. */
function keyBytes(value: unknown): Buffer | undefined {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(text) || /^[A-Za-z0-9_-]{43}$/.test(text)) {
    const bytes = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    return bytes.length === 32 ? bytes : undefined;
  }
  return undefined;
}

/** A key's name when the settings give none: a digest, which tells nothing about the key. */
function fingerprint(key: Buffer): string {
  return `key-${createHash('sha256').update('iiot-auth key id').update(key).digest('hex').slice(0, 12)}`;
}

function invalid(message: string): IiotAuthError {
  return new IiotAuthError(ErrorCode.CONFIG_INVALID, message);
}
