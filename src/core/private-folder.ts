import { randomBytes } from 'node:crypto';
import fsCallbacks from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ErrorCode } from './errors.js';
import { recordError } from './record-store.js';

/**
 * Files in a folder only the user Node-RED runs as may change, never reached
 * through a symbolic link. Whoever may write the folder may delete or replace
 * a record (and lock its owner out), or plant a link at a record's path that
 * sends the next write, secrets and all, elsewhere; so, as OpenSSH's
 * StrictModes does, a folder that others may write is refused, and a link at a
 * record's or a lock's path is refused, never followed.
 */

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL } = fsCallbacks.constants;
// Not defined on Windows: there the lstat before each open is the check.
const O_NOFOLLOW = fsCallbacks.constants.O_NOFOLLOW ?? 0;
// A FIFO planted at a record's path would block an ordinary open for ever.
const O_NONBLOCK = fsCallbacks.constants.O_NONBLOCK ?? 0;

/** File modes and owners mean nothing on Windows; its folder rights (ACLs) are not checked here. */
const POSIX = process.platform !== 'win32';

export function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/**
 * Checks the folder may hold records: the folder itself is a folder (a link to
 * one is fine: it is the user's setting), owned by this user or root, and no
 * one else may write it (mode & 022); no folder above it (its real path) may be
 * written by everyone unless it has the sticky bit (/tmp has it, so a private
 * folder inside is safe). A folder above that its group may write is allowed:
 * volumes shared with a group of one's own are common, and the state folder's
 * own mode keeps others out of it. False when the folder does not exist (or is
 * not a folder: the caller's mkdir says why).
 */
export async function checkPrivateFolder(dir: string, code: ErrorCode): Promise<boolean> {
  let stats: fsCallbacks.Stats;
  try {
    stats = await fs.stat(dir);
  } catch (err) {
    if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return false;
    throw err;
  }
  if (!stats.isDirectory()) return false;
  if (!POSIX) return true;
  const me = process.getuid?.();
  if (me !== undefined && stats.uid !== me && stats.uid !== 0) {
    throw recordError(
      code,
      `the state folder ${dir} belongs to the user with uid ${stats.uid}, not to the user Node-RED runs as (uid ${me}): whoever owns it can replace or delete the stored records, so nothing is read or written there; chown -R it to the user Node-RED runs as, or keep the state in a folder that user owns`,
    );
  }
  if (stats.mode & 0o022) {
    throw recordError(
      code,
      `the state folder ${dir} has mode ${octal(stats.mode)}: its group or others may write it, and so replace or delete the stored records; nothing is read or written there until only its owner may: chmod 700 ${dir} (as the user Node-RED runs as, who must own it)`,
    );
  }
  let folder = await fs.realpath(dir);
  while (path.dirname(folder) !== folder) {
    folder = path.dirname(folder);
    const above = await fs.stat(folder);
    if (above.mode & 0o002 && !(above.mode & 0o1000)) {
      throw recordError(
        code,
        `the folder ${folder} above the state folder ${dir} has mode ${octal(above.mode)}: anyone may write it (and it has no sticky bit), so anyone could move the state folder away and put another in its place; chmod o-w ${folder}, or keep the state in another folder`,
      );
    }
  }
  return true;
}

/** A symbolic link, or anything but a plain file, at a record's path: refused, never followed. */
function notAPlainFile(file: string, what: string, code: ErrorCode): Error {
  return recordError(
    code,
    `${file} is ${what}, not a plain file: a stored state is never read or written through a link or in place of something else; nothing was read or written. Put the state file itself there (the file a link pointed to, or a backup), or remove it to start without it`,
  );
}

/** The file's text, or undefined when there is none; refuses a link or anything but a plain file. */
export async function readPlainFile(file: string, code: ErrorCode): Promise<string | undefined> {
  const stats = await fs.lstat(file).catch((err: unknown) => {
    if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return undefined;
    throw err;
  });
  if (!stats) return undefined;
  if (stats.isSymbolicLink()) throw notAPlainFile(file, 'a symbolic link', code);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    // ELOOP: a link was put there since the lstat.
    if (codeOf(err) === 'ELOOP') throw notAPlainFile(file, 'a symbolic link', code);
    if (codeOf(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const stats = await handle.stat();
    if (stats.isDirectory()) throw Object.assign(new Error('a folder'), { code: 'EISDIR' });
    if (!stats.isFile()) throw notAPlainFile(file, 'a special file', code);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Replaces the file with `text`, all or nothing: a new file (mode 0600,
 * created exclusively, never through a link) in the same folder, synced, then
 * renamed over the path. A rename replaces a link at the path instead of
 * following it, unlike writing to the path (write-file-atomic resolves the
 * real path first). The caller syncs the folder.
 */
export async function replaceFile(file: string, text: string): Promise<void> {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  let renamed = false;
  try {
    try {
      if (POSIX) await handle.chmod(0o600); // whatever the umask
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, file);
    renamed = true;
  } finally {
    // Tidying only: the rename's own error is what the caller must see.
    if (!renamed) await fs.unlink(temporary).catch(() => undefined);
  }
}

/** Refuses a link, or anything but a folder, at a lock's path (a lock is a folder this process makes). */
export async function refuseLinkAt(lockPath: string, code: ErrorCode): Promise<void> {
  let stats: fsCallbacks.Stats;
  try {
    stats = await fs.lstat(lockPath);
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return;
    throw err;
  }
  if (stats.isSymbolicLink() || !stats.isDirectory()) {
    throw recordError(
      code,
      `the lock ${lockPath} is ${stats.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}: a lock is a folder Node-RED makes, and is never followed or replaced; nothing was read or written. Remove it (rm ${lockPath})`,
    );
  }
}

/**
 * The file-system functions proper-lockfile uses, none following a link at
 * the lock's path: mkdir and rmdir never do, and its `stat` and `utimes`
 * (staleness, keeping the lock fresh) become lstat and lutimes.
 */
export const noFollowLockFs = {
  mkdir: fsCallbacks.mkdir,
  rmdir: fsCallbacks.rmdir,
  rmdirSync: fsCallbacks.rmdirSync,
  realpath: fsCallbacks.realpath,
  stat: fsCallbacks.lstat,
  utimes: fsCallbacks.lutimes,
};

export function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? 'error';
}
