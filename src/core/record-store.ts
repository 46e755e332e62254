import { ErrorCode, IiotAuthError } from './errors.js';
import { isIdText } from './url.js';

/**
 * How a store speaks of what it keeps: the caller's words and codes, so its
 * messages stay in the user's vocabulary while the store names no user of it.
 */
export interface RecordWords {
  /** Who owns one record, as in "<owner> <id> is in use by another Node-RED process". */
  owner: string;
  /** What names a record, as in "the <id> "x" cannot name a stored state". */
  id: string;
  /** What the user does when starting without the record, as in "move it away to <startOver>". */
  startOver: string;
  /** The settings.js property that names the file store's folder. */
  folderSetting: string;
  /** The settings.js property of the Redis store. */
  redisSetting: string;
  /** The code of a record that cannot be read or written. */
  failureCode: ErrorCode;
  /** The code of a record another process holds. */
  lockedCode: ErrorCode;
}

/**
 * A store of small JSON records, each under an id, for state that must never
 * be lost or overwritten by a stale copy: every write names the version it
 * read and fails if the record changed meanwhile (compare-and-set), a write is
 * all or nothing, and a lock with an expiry lets one holder at a time make a
 * change that has effects outside the store. No record content ever appears
 * in an error message: records may hold secrets.
 */
export type RecordVersion = string;

export interface StoredRecord {
  value: Record<string, unknown>;
  version: RecordVersion;
}

/** A held lock: `fence` grows with each lock taken, and a write made with the lease checks it is still held. */
export interface RecordLease {
  readonly id: string;
  readonly fence: number;
  /** True once the lock expired or was taken over: writes with this lease are refused. */
  readonly lost: boolean;
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long the lock outlives a holder that stops renewing it (a crash), ms. */
  ttlMs: number;
  /** How long to wait for another holder to let go, ms; 0 to give up at once. */
  waitMs: number;
}

export interface RecordStore {
  /** Which kind of store, for a health view. */
  readonly kind: 'file' | 'redis';
  /** Where the records are, for messages (never a password). */
  readonly where: string;
  /**
   * True when processes on several machines may use one record at once (Redis);
   * false when one process must keep the others away for as long as it uses it
   * (the file store, see `claim`).
   */
  readonly shared: boolean;
  read(id: string): Promise<StoredRecord | undefined>;
  /** The current version only: a cheap check whether a cached copy is still current. */
  version(id: string): Promise<RecordVersion | undefined>;
  /**
   * Writes the record if its version is still `expected` (undefined: only if
   * there is none), and, with a lease, only while the lease is held.
   * Resolves with the new version once the write is durable; a refused write
   * throws a RecordConflict, any other failure an error with the words' failureCode.
   */
  write(id: string, value: Record<string, unknown>, expected: RecordVersion | undefined, lease?: RecordLease): Promise<RecordVersion>;
  /** Takes the record's lock, renewed while held; undefined when another holder kept it for longer than `waitMs`. */
  lock(id: string, options: LockOptions): Promise<RecordLease | undefined>;
  /**
   * Keeps other processes away from the record for as long as this one uses
   * it, where the store cannot share a record (the file store); a no-op where
   * it can.
   */
  claim(id: string, options: { staleMs: number; waitMs?: number }): Promise<() => Promise<void>>;
  /** Moves the record aside (kept, no longer read): after it was copied to another store. */
  retire(id: string): Promise<void>;
  close(): Promise<void>;
}

/** A write refused because the record changed since it was read, or the lease was lost. */
export class RecordConflict extends IiotAuthError {
  constructor(
    readonly reason: 'changed' | 'lease-lost',
    id: string,
    where: string,
    code: ErrorCode,
  ) {
    super(
      code,
      reason === 'changed'
        ? `the stored state of ${id} in ${where} changed while it was being updated (another Node-RED instance wrote it): try again`
        : `the lock on the stored state of ${id} in ${where} expired before the write (this instance stalled): try again`,
    );
  }
}

export function isRecordConflict(value: unknown): value is RecordConflict {
  return value instanceof RecordConflict;
}

/** Ids name files and keys: letters, digits, ".", "_" and "-", not starting with a dot. */
export function checkRecordId(id: string, what = 'id'): string {
  if (!isIdText(id) || id.startsWith('.')) {
    throw new IiotAuthError(
      ErrorCode.CONFIG_INVALID,
      `the ${what} "${id.slice(0, 60)}" cannot name a stored state: it must be letters, digits, ".", "_" or "-"`,
    );
  }
  return id;
}

/** A record that cannot be read or written, with the caller's code. */
export function recordError(code: ErrorCode, message: string, cause?: unknown): IiotAuthError {
  return new IiotAuthError(code, message, cause === undefined ? {} : { cause });
}

/** Runs one task at a time per key: no two changes of the same record in this process. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    // The queue only orders the tasks: each caller gets its task's error from `result`.
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
