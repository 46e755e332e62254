import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import writeFileAtomic from 'write-file-atomic';
import { ErrorCode, IiotAuthError } from './errors.js';

/**
 * The durable state of an Insights Hub agent: the credentials the platform
 * shows once. One file per agent, `<dir>/<client id>.json`, mode 0600,
 * written atomically (write, fsync, rename, fsync of the directory), never in
 * the flow files. Registrations are kept newest first, so a rotation whose
 * answer was lost can be retried with an older registration access token.
 */
export const STATE_FORMAT = 1;
/** How many registrations are kept (the official SDK keeps five). */
export const KEPT_REGISTRATIONS = 5;

export type SecurityProfile = 'SHARED_SECRET' | 'RSA_3072';

export interface AgentRegistration {
  clientId: string;
  /** SHARED_SECRET only. */
  clientSecret?: string;
  /** Epoch seconds. */
  clientSecretExpiresAt: number;
  registrationAccessToken: string;
  registrationClientUri: string;
  tokenEndpointAuthMethod: string;
  /** RSA_3072: the PKCS#8 PEM private key whose public half this registration carries. */
  privateKey?: string;
  keyId?: string;
  receivedAt: string;
  /** True once these credentials produced an access token (the platform then forgets older ones). */
  confirmed: boolean;
}

/** An RSA key sent to the platform (or about to be) before its registration answer is stored. */
export interface PendingKey {
  privateKey: string;
  keyId: string;
  createdAt: string;
  purpose: 'onboard' | 'rotate';
}

export interface AgentState {
  format: typeof STATE_FORMAT;
  clientId: string;
  tenant: string;
  baseUrl: string;
  profile: SecurityProfile;
  /** A digest of the boarding configuration's IAT: a new configuration means a new onboarding. */
  boardingConfigId: string;
  /** Set just before the onboarding request is sent, cleared when its answer is stored. */
  onboardingStartedAt?: string;
  pendingKey?: PendingKey;
  /** Newest first. */
  registrations: AgentRegistration[];
  lastRotationAt?: string;
  /** Set when this process offboarded the agent: its credentials no longer work. */
  offboardedAt?: string;
  updatedAt: string;
}

/** The digest that identifies a boarding configuration (never the IAT itself). */
export function boardingConfigId(iat: string): string {
  return createHash('sha256').update(iat).digest('hex').slice(0, 32);
}

const SAFE_ID = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * Locks this process holds, by state file: two config nodes of one agent in
 * the same Node-RED share the lock (their operations are serialised by the
 * KeyedMutex); only another process is kept out.
 */
const heldLocks = new Map<string, { users: number; release: Promise<() => Promise<void>> }>();

export class AgentStateStore {
  constructor(readonly dir: string) {}

  filePath(clientId: string): string {
    if (!SAFE_ID.test(clientId) || clientId.startsWith('.')) {
      throw new IiotAuthError(
        ErrorCode.CONFIG_INVALID,
        `the agent's client id "${clientId.slice(0, 60)}" cannot name a state file: it must be letters, digits, ".", "_" or "-"`,
      );
    }
    return path.join(this.dir, `${clientId}.json`);
  }

  /** The stored state, or undefined when there is none. A corrupt file is an error, never silently replaced. */
  async read(clientId: string): Promise<AgentState | undefined> {
    const file = this.filePath(clientId);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fsError('read the agent state', file, this.dir, err);
    }
    let state: unknown;
    try {
      state = JSON.parse(text);
    } catch {
      throw stateError(`the agent state ${file} is not valid JSON: restore it from a backup, or move it away to onboard again`);
    }
    return checkState(state, file, clientId);
  }

  /** Writes the state durably: after this resolves, a crash or power loss keeps it. */
  async write(state: AgentState): Promise<void> {
    const file = this.filePath(state.clientId);
    const next: AgentState = {
      ...state,
      registrations: state.registrations.slice(0, KEPT_REGISTRATIONS),
      updatedAt: new Date().toISOString(),
    };
    try {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(file, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600, fsync: true });
      await fsyncDirectory(this.dir);
    } catch (err) {
      throw fsError('save the agent state (the new credentials are not used until it is saved)', file, this.dir, err);
    }
  }

  /**
   * Takes the agent's lock file, against a second Node-RED process using the
   * same state directory. Held while the agent is in use; a crashed holder's
   * lock goes stale after `staleMs`, and `waitMs` covers that wait on restart.
   * Within this process the lock is shared and counted.
   */
  async lock(clientId: string, options: { staleMs?: number; waitMs?: number } = {}): Promise<() => Promise<void>> {
    const file = this.filePath(clientId);
    let held = heldLocks.get(file);
    if (!held) {
      held = { users: 0, release: this.lockFile(file, clientId, options) };
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
        await release().catch(() => undefined);
      }
    };
  }

  private async lockFile(file: string, clientId: string, options: { staleMs?: number; waitMs?: number }): Promise<() => Promise<void>> {
    try {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fsError('create the agent state folder', this.dir, this.dir, err);
    }
    const staleMs = Math.max(2000, options.staleMs ?? 10_000);
    const waitMs = options.waitMs ?? staleMs + 2000;
    try {
      return await lockfile.lock(file, {
        realpath: false,
        stale: staleMs,
        update: Math.floor(staleMs / 2),
        retries: { retries: Math.ceil(waitMs / 500), factor: 1, minTimeout: 500, maxTimeout: 500 },
        // A lost lock (the lock dir was removed, or updates stalled): say so loudly, do not crash the runtime.
        onCompromised: (err) => {
          heldLocks.delete(file);
          process.emitWarning(`iiot-auth: the lock of agent ${clientId} was compromised (${err.message}); another process may use this agent`);
        },
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new IiotAuthError(
          ErrorCode.AGENT_LOCKED,
          `agent ${clientId} is in use by another Node-RED process sharing ${this.dir}: one agent, one process; give the other process its own agent`,
        );
      }
      throw fsError(`lock the agent state of ${clientId}`, `${file}.lock`, this.dir, err);
    }
  }
}

/** Runs one task at a time per key: no two rotations of the same agent in this process. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  // Makes the rename itself durable. Not every platform can open a directory
  // (Windows): there the rename is as durable as the OS makes it.
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * A file-system failure as AGENT_STATE_ERROR: what failed, where, the
 * system's code, and what to do about it; never the raw system message.
 */
function fsError(action: string, file: string, dir: string, err: unknown): IiotAuthError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const advice: Record<string, string> = {
    EEXIST: `something that is not a folder is in the way: ${dir} (or a folder above it) must be a folder; move the file away or set iiotAuth.agentStateDir`,
    ENOTDIR: `a file is in the way: ${dir} (or a folder above it) must be a folder; move the file away or set iiotAuth.agentStateDir`,
    EISDIR: `a folder is in the way of the file ${file}: move it away`,
    EACCES: `Node-RED's user may not access it: fix the permissions of ${dir}, or set iiotAuth.agentStateDir to a folder it owns`,
    EPERM: `Node-RED's user may not access it: fix the permissions of ${dir}, or set iiotAuth.agentStateDir to a folder it owns`,
    EROFS: `the file system is read-only: set iiotAuth.agentStateDir to a writable folder (a Docker volume, say)`,
    ENOSPC: 'the disk is full: free space',
    EDQUOT: 'the disk quota is used up: free space or raise the quota',
    EMFILE: 'too many open files: raise the limit of open files (ulimit -n)',
  };
  return stateError(`could not ${action} ${file} (${code ?? 'error'}): ${(code && advice[code]) ?? 'check the folder and the disk'}`, err);
}

function stateError(message: string, cause?: unknown): IiotAuthError {
  return new IiotAuthError(ErrorCode.AGENT_STATE_ERROR, message, cause === undefined ? {} : { cause });
}

function checkState(value: unknown, file: string, clientId: string): AgentState {
  const state = value as Partial<AgentState> | null;
  if (!state || typeof state !== 'object') throw stateError(`the agent state ${file} is not an object`);
  if (state.format !== STATE_FORMAT) {
    throw stateError(`the agent state ${file} has format ${String(state.format)}, this version reads format ${STATE_FORMAT}: update the package, or restore the matching version`);
  }
  if (state.clientId !== clientId) throw stateError(`the agent state ${file} belongs to another agent (${String(state.clientId)})`);
  if (!Array.isArray(state.registrations)) throw stateError(`the agent state ${file} lacks its registrations`);
  state.registrations.forEach((registration, i) => {
    const problem = registrationProblem(registration) ?? foreignUri(registration, state.baseUrl);
    if (problem) {
      throw stateError(`the agent state ${file} is damaged: registration ${i + 1} ${problem}; restore the file from a backup (it is never overwritten while damaged), or move it away, offboard the agent and onboard it again`);
    }
  });
  return state as AgentState;
}

/** A registration URI off the agent's platform: its registration access token would go there. */
function foreignUri(registration: AgentRegistration, baseUrl: unknown): string | undefined {
  if (!registration.registrationClientUri || typeof baseUrl !== 'string') return undefined;
  try {
    return new URL(registration.registrationClientUri).origin === new URL(baseUrl).origin ? undefined : 'has a registration URI on another origin than the platform';
  } catch {
    return 'has a registration URI that is not a URL';
  }
}

/** What makes a stored registration unusable, or undefined when it is usable. */
function registrationProblem(value: unknown): string | undefined {
  const r = value as Partial<AgentRegistration> | null;
  if (!r || typeof r !== 'object') return 'is not an object';
  const text = (v: unknown) => typeof v === 'string';
  if (!text(r.clientId) || !r.clientId) return 'has no client id';
  if (typeof r.clientSecretExpiresAt !== 'number' || Number.isNaN(r.clientSecretExpiresAt)) return 'has no valid client_secret_expires_at';
  if (!text(r.registrationAccessToken) || !text(r.registrationClientUri)) return 'has no registration access token or URI';
  if (!text(r.receivedAt) || Number.isNaN(Date.parse(r.receivedAt!))) return 'has no valid receivedAt';
  if (r.privateKey !== undefined && (!text(r.privateKey) || !r.privateKey)) return 'has an unusable private key';
  if (r.clientSecret !== undefined && (!text(r.clientSecret) || !r.clientSecret)) return 'has an unusable client secret';
  if (!r.privateKey && !r.clientSecret) return 'has neither a client secret nor a private key';
  return undefined;
}
