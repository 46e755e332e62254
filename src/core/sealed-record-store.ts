import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IiotAuthError } from './errors.js';
import { recordError, type LockOptions, type RecordLease, type RecordStore, type RecordVersion, type RecordWords, type StoredRecord } from './record-store.js';
import { keysById, type SealingKey, type SealingKeys } from './sealing-keys.js';

/**
 * Records sealed at rest, around any record store: on write, the record's
 * secret fields (paths the caller names, `*` for every item of a list) are
 * each replaced by AES-256-GCM ciphertext under the current key, with a fresh
 * 12-byte IV and the record id, key id and field path as additional data (a
 * sealed value moved to another record or field does not open); on read they
 * are opened again. Everything else, and the record's id and version, stays
 * readable, so locks and versions work as before. The record names its key:
 *
 *   "$sealed": { "keyId": "k2", "check": "…", "cipher": "aes-256-gcm" }
 *
 * A record written before sealing was turned on reads as it is and is sealed
 * with its next write; one sealed under a previous key opens and is sealed
 * under the current key with its next write. One that cannot be opened (no
 * key, an unknown or different key, a changed or truncated value) is an error
 * with the words' failureCode, and a write that names its version is refused:
 * it is never overwritten.
 */
export interface SealingOptions {
  /** Paths of the secret fields, e.g. "registrations.*.clientSecret"; the rest stays readable. */
  secretFields: readonly string[];
  /** Undefined: records are written in plain text (and sealed ones cannot be opened). */
  keys: SealingKeys | undefined;
  /** The settings.js property of the keys, for messages. */
  keySetting: string;
}

export const SEALED_MARK = '$sealed';
const CIPHER = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;

interface SealMark {
  keyId: string;
  check: string;
  cipher: string;
}

export class SealedRecordStore implements RecordStore {
  private readonly keys: Map<string, SealingKey>;
  /** Records this store could not open, by id, with the version read: never overwritten. */
  private readonly unopened = new Map<string, { version: RecordVersion; error: IiotAuthError }>();

  constructor(
    readonly inner: RecordStore,
    private readonly options: SealingOptions,
    private readonly words: RecordWords,
  ) {
    this.keys = keysById(options.keys);
  }

  get kind(): RecordStore['kind'] {
    return this.inner.kind;
  }

  get where(): string {
    return this.inner.where;
  }

  get shared(): boolean {
    return this.inner.shared;
  }

  get minReplicas(): number {
    return this.inner.minReplicas;
  }

  /** The record's version is the inner store's: acknowledging it needs no key. */
  acknowledge(id: string, version: RecordVersion): Promise<void> {
    return this.inner.acknowledge(id, version);
  }

  /** The id of the key that seals new writes; undefined when records are written in plain text. */
  get currentKeyId(): string | undefined {
    return this.options.keys?.current.id;
  }

  /** The key a stored value was sealed with, as written in it; undefined for a plain one. */
  static sealedWith(value: Record<string, unknown>): string | undefined {
    const mark = value[SEALED_MARK] as Partial<SealMark> | undefined;
    return mark && typeof mark === 'object' ? String(mark.keyId) : undefined;
  }

  async read(id: string): Promise<StoredRecord | undefined> {
    let stored: StoredRecord | undefined;
    try {
      stored = await this.inner.read(id);
    } catch (err) {
      // A record the store cannot parse (cut short, say) is not replaced either; an unreachable store has no version to note.
      const version = await this.inner.version(id).catch(() => undefined);
      if (version !== undefined) this.unopened.set(id, { version, error: err as IiotAuthError });
      throw err;
    }
    if (!stored) {
      this.unopened.delete(id);
      return undefined;
    }
    try {
      const value = this.open(id, stored.value);
      this.unopened.delete(id);
      return { value, version: stored.version };
    } catch (err) {
      this.unopened.set(id, { version: stored.version, error: err as IiotAuthError });
      throw err;
    }
  }

  version(id: string): Promise<RecordVersion | undefined> {
    return this.inner.version(id);
  }

  async write(id: string, value: Record<string, unknown>, expected: RecordVersion | undefined, lease?: RecordLease): Promise<RecordVersion> {
    const unopened = this.unopened.get(id);
    if (unopened && expected !== undefined && unopened.version === expected) throw unopened.error;
    return this.inner.write(id, this.seal(id, value), expected, lease);
  }

  lock(id: string, options: LockOptions): Promise<RecordLease | undefined> {
    return this.inner.lock(id, options);
  }

  claim(id: string, options: { staleMs: number; waitMs?: number }): Promise<() => Promise<void>> {
    return this.inner.claim(id, options);
  }

  ids(): Promise<string[]> {
    return this.inner.ids();
  }

  retire(id: string): Promise<void> {
    return this.inner.retire(id);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** The value as stored: secret fields sealed under the current key, or the value itself without a key. */
  private seal(id: string, value: Record<string, unknown>): Record<string, unknown> {
    const sealed = structuredClone(value);
    delete sealed[SEALED_MARK];
    const key = this.options.keys?.current;
    if (!key) return sealed;
    for (const field of secretFields(sealed, this.options.secretFields)) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(CIPHER, key.key, iv);
      cipher.setAAD(additionalData(id, key.id, field.path));
      const ciphertext = Buffer.concat([cipher.update(JSON.stringify(field.value), 'utf8'), cipher.final()]);
      field.set([iv, ciphertext, cipher.getAuthTag()].map((part) => part.toString('base64url')).join('.'));
    }
    const mark: SealMark = { keyId: key.id, check: key.check, cipher: CIPHER };
    return { [SEALED_MARK]: mark, ...sealed };
  }

  /** The stored value with its secret fields opened; an error that says which and what to do when it cannot be. */
  private open(id: string, stored: Record<string, unknown>): Record<string, unknown> {
    if (!(SEALED_MARK in stored)) return stored; // written before sealing was turned on: sealed with the next write
    const where = `the stored state of ${id} in ${this.where}`;
    const kept = `it is kept as it is and never overwritten`;
    const mark = stored[SEALED_MARK] as Partial<SealMark> | null;
    if (!mark || typeof mark !== 'object' || typeof mark.keyId !== 'string' || typeof mark.check !== 'string' || mark.cipher !== CIPHER) {
      throw this.failure(`${where} has a damaged "${SEALED_MARK}" entry (which key sealed it is unreadable): restore it from a backup; ${kept}`);
    }
    const keyId = mark.keyId.slice(0, 40);
    if (this.keys.size === 0) {
      throw this.failure(
        `${where} is encrypted (key "${keyId}") but ${this.options.keySetting} is not set: set it in settings.js with the key it was sealed with; ${kept}`,
      );
    }
    const key = this.keys.get(mark.keyId);
    if (!key) {
      throw this.failure(
        `${where} is encrypted with the key "${keyId}", which ${this.options.keySetting} does not have: add that key (to keys.previous, with id "${keyId}"); ${kept}`,
      );
    }
    if (!sameText(key.check, mark.check)) {
      throw this.failure(
        `${where} is encrypted with another key than the one ${this.options.keySetting} names "${keyId}" (a wrong key): put the key it was sealed with under that id; ${kept}`,
      );
    }
    const value = structuredClone(stored);
    delete value[SEALED_MARK];
    for (const field of secretFields(value, this.options.secretFields)) {
      const opened = openField(field.value, key.key, additionalData(id, key.id, field.path));
      if (opened === undefined) {
        throw this.failure(
          `${where} cannot be decrypted: its field ${field.path} was changed or cut short (tampered, or a truncated copy: the AES-GCM check fails): restore it from a backup; ${kept}`,
        );
      }
      field.set(opened);
    }
    return value;
  }

  private failure(message: string): IiotAuthError {
    return recordError(this.words.failureCode, message);
  }
}

/** The additional data of one sealed field: it opens only in its own record, field and key. */
function additionalData(id: string, keyId: string, path: string): Buffer {
  return Buffer.from(`iiot-auth sealed record 1\0${id}\0${keyId}\0${path}`, 'utf8');
}

/** A sealed field's value; undefined when it is not one (cut short, changed), or the GCM tag fails. */
function openField(sealed: unknown, key: Buffer, aad: Buffer): unknown {
  if (typeof sealed !== 'string') return undefined;
  const parts = sealed.split('.');
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]*$/.test(p))) return undefined;
  const [iv, ciphertext, tag] = parts.map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer];
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    const text = Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

interface SecretField {
  path: string;
  value: unknown;
  set(value: unknown): void;
}

/** The fields at the given paths that hold a value ("*" stands for every item of a list or object). */
function secretFields(root: Record<string, unknown>, paths: readonly string[]): SecretField[] {
  const found: SecretField[] = [];
  const walk = (node: unknown, steps: string[], at: string[]): void => {
    if (!node || typeof node !== 'object') return;
    const [step, ...rest] = steps as [string, ...string[]];
    const container = node as Record<string, unknown>;
    const names = step === '*' ? Object.keys(container) : Object.hasOwn(container, step) ? [step] : [];
    for (const name of names) {
      if (rest.length > 0) walk(container[name], rest, [...at, name]);
      else if (container[name] !== undefined && container[name] !== null) {
        found.push({ path: [...at, name].join('.'), value: container[name], set: (v) => (container[name] = v) });
      }
    }
  };
  for (const path of paths) walk(root, path.split('.'), []);
  return found;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
