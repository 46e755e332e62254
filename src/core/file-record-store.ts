import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { IiotAuthError, isIiotAuthError } from './errors.js';
import { checkPrivateFolder, codeOf, noFollowLockFs, readPlainFile, refuseLinkAt, replaceFile } from './private-folder.js';
import {
  checkRecordId,
  KeyedMutex,
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
 * The record store on one disk: `<dir>/<id>.json`, mode 0600, written
 * atomically (write, fsync, rename, fsync of the directory). A record's
 * version is a digest of its file, so files written by older versions of the
 * package read as they are. One process uses a record at a time (a lock file,
 * see `claim`); within it, writes to one record are serialised.
 *
 * The folder must be private (created 0700; one that others may write, or
 * that another user owns, is refused before anything is read or written), and
 * a symbolic link at a record's or a lock's path is refused, never followed:
 * see private-folder.ts.
 */

/** Lock files this process holds: users of one record in one process share it; only another process is kept out. */
const heldLocks = new Map<string, { users: number; release: Promise<() => Promise<void>> }>();
const writes = new KeyedMutex();

export class FileRecordStore implements RecordStore {
  readonly kind = 'file';
  readonly shared = false;
  private fence = 0;

  constructor(
    readonly dir: string,
    private readonly words: RecordWords,
  ) {}

  get where(): string {
    return this.dir;
  }

  filePath(id: string): string {
    return path.join(this.dir, `${checkRecordId(id, this.words.id)}.json`);
  }

  async read(id: string): Promise<StoredRecord | undefined> {
    const file = this.filePath(id);
    const text = await this.readText(file);
    if (text === undefined) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw recordError(
        this.words.failureCode,
        `the stored state ${file} is not valid JSON: restore it from a backup, or move it away to ${this.words.startOver}`,
      );
    }
    if (!value || typeof value !== 'object' || Array.isArray(value))
      throw recordError(this.words.failureCode, `the stored state ${file} is not an object: restore it from a backup`);
    return { value: value as Record<string, unknown>, version: digest(text) };
  }

  async version(id: string): Promise<RecordVersion | undefined> {
    const text = await this.readText(this.filePath(id));
    return text === undefined ? undefined : digest(text);
  }

  write(id: string, value: Record<string, unknown>, expected: RecordVersion | undefined): Promise<RecordVersion> {
    const file = this.filePath(id);
    return writes.run(file, async () => {
      if ((await this.version(id)) !== expected) throw new RecordConflict('changed', id, this.dir, this.words.failureCode);
      const text = `${JSON.stringify(value, null, 2)}\n`;
      try {
        await this.makeFolder();
        await replaceFile(file, text);
        await fsyncDirectory(this.dir);
      } catch (err) {
        throw fsError('save the stored state (the new credentials are not used until it is saved)', file, this.dir, err, this.words);
      }
      return digest(text);
    });
  }

  /**
   * The process's claim (the lock file) already keeps other processes away,
   * and the caller serialises its own changes: the lease is this process's.
   */
  async lock(id: string, _options: LockOptions): Promise<RecordLease> {
    this.filePath(id);
    return { id, fence: ++this.fence, lost: false, release: async () => undefined };
  }

  /**
   * Takes the record's lock file against a second Node-RED process using the
   * same directory, for as long as the record is in use. A crashed holder's
   * lock goes stale after `staleMs`, and `waitMs` covers that wait on restart.
   * Within this process the lock is shared and counted.
   */
  async claim(id: string, options: { staleMs?: number; waitMs?: number } = {}): Promise<() => Promise<void>> {
    const file = this.filePath(id);
    let held = heldLocks.get(file);
    if (!held) {
      held = { users: 0, release: this.lockFile(file, id, options) };
      heldLocks.set(file, held);
      held.release.catch(() => heldLocks.delete(file));
    }
    const release = await held.release;
    held.users += 1;
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      held.users -= 1;
      if (held.users === 0 && heldLocks.get(file) === held) {
        heldLocks.delete(file);
        // A lock already released or compromised is gone either way; proper-lockfile's stale time frees any remains.
        await release().catch(() => undefined);
      }
    };
  }

  async retire(id: string): Promise<void> {
    const file = this.filePath(id);
    try {
      await checkPrivateFolder(this.dir, this.words.failureCode);
      // A rename moves a link at either path rather than following it.
      await fs.rename(file, `${file}.moved`);
      await fsyncDirectory(this.dir);
    } catch (err) {
      if (isIiotAuthError(err)) throw err;
      throw recordError(this.words.failureCode, `could not rename ${file} after copying it (${codeOf(err)}): rename or remove it by hand`, err);
    }
  }

  async close(): Promise<void> {}

  private async lockFile(file: string, id: string, options: { staleMs?: number; waitMs?: number }): Promise<() => Promise<void>> {
    const staleMs = Math.max(2000, options.staleMs ?? 10_000);
    const waitMs = options.waitMs ?? staleMs + 2000;
    const lockPath = `${file}.lock`;
    try {
      await this.makeFolder();
      await refuseLinkAt(lockPath, this.words.failureCode);
      return await lockfile.lock(file, {
        realpath: false,
        fs: noFollowLockFs,
        stale: staleMs,
        update: Math.floor(staleMs / 2),
        retries: { retries: Math.ceil(waitMs / 500), factor: 1, minTimeout: 500, maxTimeout: 500 },
        // A lost lock (the lock dir was removed, or updates stalled): say so loudly, do not crash the runtime.
        onCompromised: () => {
          heldLocks.delete(file);
          process.emitWarning(`iiot-auth: the lock of ${this.words.owner} ${id} was compromised; another process may use this ${this.words.owner}`);
        },
      });
    } catch (err) {
      if (isIiotAuthError(err)) throw err;
      // A link put at the lock's path while waiting reads as a held lock (or a failed removal): say what it is.
      await refuseLinkAt(lockPath, this.words.failureCode).catch((linked: unknown) => {
        if (isIiotAuthError(linked)) throw linked;
      });
      if (codeOf(err) === 'ELOCKED') {
        const { owner } = this.words;
        throw new IiotAuthError(
          this.words.lockedCode,
          `${owner} ${id} is in use by another Node-RED process sharing ${this.dir}: one ${owner}, one process; give the other process its own ${owner}, or share ${owner}s through Redis (${this.words.redisSetting})`,
        );
      }
      throw fsError(`lock the stored state of ${id}`, lockPath, this.dir, err, this.words);
    }
  }

  /** Creates the folder (0700) if it is missing, and checks it is private. */
  private async makeFolder(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await checkPrivateFolder(this.dir, this.words.failureCode);
  }

  /** A record file's text; undefined when the folder or the file is missing (or a part of the path is a file: a write says why it cannot make one). */
  private async readText(file: string): Promise<string | undefined> {
    try {
      if (!(await checkPrivateFolder(this.dir, this.words.failureCode))) return undefined;
      return await readPlainFile(file, this.words.failureCode);
    } catch (err) {
      throw fsError('read the stored state', file, this.dir, err, this.words);
    }
  }
}

/**
 * A file-system failure, with the words' failureCode: what failed, where, the
 * system's code, and what to do about it; never the raw system message.
 */
function fsError(action: string, file: string, dir: string, err: unknown, words: RecordWords): IiotAuthError {
  if (isIiotAuthError(err)) return err; // already says what is wrong and what to do
  const code = codeOf(err);
  const noAccess = `Node-RED's user may not access it: ${dir} must belong to the user Node-RED runs as, mode 0700 (chown -R that user, chmod 700), or set ${words.folderSetting} to a folder it owns`;
  const notAFolder = `a file is in the way: ${dir} (or a folder above it) must be a folder; move the file away or set ${words.folderSetting}`;
  const advice: Record<string, string> = {
    EEXIST: notAFolder,
    ENOTDIR: notAFolder,
    EISDIR: `a folder is in the way of the file ${file}: move it away`,
    ELOOP: `symbolic links in the path of ${dir} point in a circle: fix them`,
    EACCES: noAccess,
    EPERM: noAccess,
    EROFS: `the file system is read-only: set ${words.folderSetting} to a writable folder (a Docker volume, say)`,
    ENOSPC: 'the disk is full: free space',
    EDQUOT: 'the disk quota is used up: free space or raise the quota',
    EMFILE: 'too many open files: raise the limit of open files (ulimit -n)',
  };
  return recordError(words.failureCode, `could not ${action} ${file} (${code}): ${advice[code] ?? 'check the folder and the disk'}`, err);
}

function digest(text: string): RecordVersion {
  return createHash('sha256').update(text).digest('hex').slice(0, 24);
}

async function fsyncDirectory(dir: string): Promise<void> {
  // Makes the rename itself durable. Not every platform can open a directory
  // (Windows): there the rename is as durable as the OS makes it.
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = codeOf(err);
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') throw err;
  } finally {
    await handle?.close();
  }
}
