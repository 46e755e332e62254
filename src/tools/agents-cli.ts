#!/usr/bin/env node
// `iiot-auth-agents` (the package's bin): lists the agents in a store, re-seals them under the current key, and copies
// them between the file store and Redis, with the stores Node-RED uses, configured by the same settings.js.

import os from 'node:os';
import path from 'node:path';
import { isIiotAuthError } from '../core/errors.js';
import type { RecordStore } from '../core/record-store.js';
import { SealedRecordStore } from '../core/sealed-record-store.js';
import { agentStores, type AgentStoreSettings } from '../nodes/agent-store.js';
import type { NodeAPI } from '../nodes/node-red.js';
import type { AgentState } from '../platforms/insights-hub-agent/state.js';

export const USAGE = `Usage: iiot-auth-agents <command> [options]

Agent state (Insights Hub agents) in the stores Node-RED uses, configured by
the same settings.js (iiotAuth.agentStateDir, iiotAuth.agentStore).

Commands:
  list                        the agents in the store: client id, onboarded,
                              profile, secret expiry, the key their secrets are
                              sealed with (or "plain"); never a secret
  reseal                      re-seals every record under the current key of
                              iiotAuth.agentStore.encryption (plain ones too)
  copy --from <s> --to <s>    copies every record from one store to the other
                              (file or redis), sealed as configured; a record
                              the target holds already is kept if it is as new
                              or newer; the source is left as it is

Options:
  --settings <file>   Node-RED's settings.js (default: <userDir>/settings.js)
  --userDir <dir>     Node-RED's user directory (default: the settings'
                      userDir, else ~/.node-red), as Node-RED takes it
  --store file|redis  the store of list and reseal (default: the one Node-RED
                      uses: redis when iiotAuth.agentStore.redis is set)
  --json              list: one JSON array instead of a table
  --help              this text

Stop Node-RED before reseal or copy into the file store (it holds each agent's
lock file: those agents are reported as in use and skipped). With Redis, the
commands may run while Node-RED runs: every write names the version it read.

Exit codes: 0 done; 1 some records failed (each is reported with what to do);
2 nothing done (wrong arguments, settings that cannot be used).`;

type StoreName = 'file' | 'redis';

export interface CliArgs {
  command: 'list' | 'reseal' | 'copy' | 'help';
  settings?: string;
  userDir?: string;
  store?: StoreName;
  from?: StoreName;
  to?: StoreName;
  json: boolean;
}

/** A problem with the arguments or the settings: nothing was done (exit 2). */
class UsageError extends Error {}

export function parseArgs(argv: string[]): CliArgs {
  const args: CliArgs = { command: 'help', json: false };
  let command: string | undefined;
  const rest = [...argv];
  while (rest.length > 0) {
    const arg = rest.shift() as string;
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? rest.shift();
      if (v === undefined || v === '') throw new UsageError(`${name} needs a value`);
      return v;
    };
    const storeName = (): StoreName => {
      const v = value();
      if (v !== 'file' && v !== 'redis') throw new UsageError(`${name} is "${v}": write file or redis`);
      return v;
    };
    if (name === '--help' || name === '-h') return { command: 'help', json: false };
    if (name === '--settings' || name === '-s') args.settings = value();
    else if (name === '--userDir' || name === '-u') args.userDir = value();
    else if (name === '--store') args.store = storeName();
    else if (name === '--from') args.from = storeName();
    else if (name === '--to') args.to = storeName();
    else if (name === '--json') args.json = true;
    else if (name.startsWith('-')) throw new UsageError(`unknown option ${name}`);
    else if (command === undefined) command = name;
    else throw new UsageError(`one command at a time ("${command}", then "${name}")`);
  }
  if (command === undefined) throw new UsageError('no command: give list, reseal or copy');
  if (command !== 'list' && command !== 'reseal' && command !== 'copy') throw new UsageError(`unknown command "${command}": give list, reseal or copy`);
  args.command = command;
  if (command === 'copy') {
    if (!args.from || !args.to) throw new UsageError('copy needs --from and --to (file or redis)');
    if (args.from === args.to) throw new UsageError(`copy --from and --to are both ${args.from}: copy goes from one store to the other`);
  }
  return args;
}

/** Node-RED's settings, as Node-RED finds them: --settings, else <userDir>/settings.js. */
function loadSettings(args: CliArgs): Record<string, unknown> {
  const file = path.resolve(args.settings ?? path.join(args.userDir ?? path.join(os.homedir(), '.node-red'), 'settings.js'));
  let settings: unknown;
  try {
    settings = require(file);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && String((err as Error).message).includes(file);
    throw new UsageError(
      missing
        ? `no settings file at ${file}: give --settings <path to settings.js> or --userDir <Node-RED's user directory>`
        : `${file} could not be loaded (${(err as Error).name}): check it starts Node-RED`,
    );
  }
  if (!settings || typeof settings !== 'object') throw new UsageError(`${file} does not export the settings object (module.exports = { … })`);
  const userDir = args.userDir ?? (settings as { userDir?: string }).userDir ?? path.join(os.homedir(), '.node-red');
  return { ...(settings as Record<string, unknown>), userDir };
}

interface Stores {
  file: SealedRecordStore;
  redis?: SealedRecordStore;
  /** The one Node-RED uses. */
  used: StoreName;
  release(): Promise<void>;
}

/** The stores, made as the runtime makes them (agent-store.ts): the same classes, settings and sealing. */
function openStores(settings: Record<string, unknown>, err: (line: string) => void): Stores {
  const red = { settings, log: { info: () => undefined, warn: (m: string) => err(`warning: ${m}`), error: err } } as unknown as NodeAPI;
  const iiotAuth = (settings.iiotAuth ?? {}) as { agentStore?: AgentStoreSettings };
  const stores = agentStores(red);
  const used: StoreName = iiotAuth.agentStore?.use ?? (iiotAuth.agentStore?.redis ? 'redis' : 'file');
  const store = stores.store as SealedRecordStore;
  const other = stores.importFrom as SealedRecordStore | undefined;
  if (used === 'redis' && other) return { file: other, redis: store, used, release: stores.release };
  return { file: store, ...(other ? { redis: other } : {}), used, release: stores.release };
}

function pick(stores: Stores, name: StoreName): SealedRecordStore {
  const store = name === 'file' ? stores.file : stores.redis;
  if (!store) throw new UsageError('iiotAuth.agentStore.redis is not set in the settings: add { url: "redis://host:6379" } to use Redis');
  return store;
}

export interface AgentRow {
  clientId: string;
  onboarded: boolean;
  profile: string;
  secretExpiresAt: string;
  sealedWith: string;
  problem?: string;
}

/** One agent's readable fields, from the record as stored (nothing is decrypted). */
async function row(store: SealedRecordStore, id: string): Promise<AgentRow> {
  try {
    const stored = await store.inner.read(id);
    const value = (stored?.value ?? {}) as Partial<AgentState> & Record<string, unknown>;
    const newest = Array.isArray(value.registrations) ? value.registrations[0] : undefined;
    const expiry = typeof newest?.clientSecretExpiresAt === 'number' && newest.clientSecretExpiresAt > 0 ? newest.clientSecretExpiresAt : undefined;
    return {
      clientId: id,
      onboarded: Boolean(newest) && !value.offboardedAt,
      profile: typeof value.profile === 'string' ? value.profile : '?',
      secretExpiresAt: expiry ? new Date(expiry * 1000).toISOString() : '-',
      sealedWith: SealedRecordStore.sealedWith(value) ?? 'plain',
    };
  } catch (err) {
    return { clientId: id, onboarded: false, profile: '?', secretExpiresAt: '-', sealedWith: '?', problem: describe(err) };
  }
}

function table(rows: AgentRow[]): string {
  const head = ['client id', 'onboarded', 'profile', 'secret expires', 'sealed with'];
  const cells = rows.map((r) => [r.clientId, r.onboarded ? 'yes' : 'no', r.profile, r.secretExpiresAt, r.problem ? `unreadable: ${r.problem}` : r.sealedWith]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  return [head, ...cells].map((c) => c.map((text, i) => (i === c.length - 1 ? text : text.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

/** How many records went which way, in the order first counted. */
class Counts extends Map<string, number> {
  constructor(...kinds: string[]) {
    super(kinds.map((kind) => [kind, 0]));
  }
  add(kind: string): void {
    this.set(kind, (this.get(kind) ?? 0) + 1);
  }
  get failed(): number {
    return this.get('failed') ?? 0;
  }
}

/** Re-seals every record under the current key; a record sealed with it already is left alone. */
async function reseal(store: SealedRecordStore, err: (line: string) => void): Promise<Counts> {
  if (store.currentKeyId === undefined) {
    throw new UsageError('iiotAuth.agentStore.encryption is not set in the settings: set a key first (docs/operations.md), then run reseal');
  }
  const counts = new Counts('resealed', 'already current', 'failed');
  for (const id of await store.ids()) {
    try {
      const raw = await store.inner.read(id);
      if (raw && SealedRecordStore.sealedWith(raw.value) === store.currentKeyId) {
        counts.add('already current');
        continue;
      }
      await exclusively(store, id, async () => {
        const stored = await store.read(id);
        if (stored) await durably(store, id, await store.write(id, stored.value, stored.version));
      });
      counts.add('resealed');
    } catch (e) {
      counts.add('failed');
      err(`${id}: ${describe(e)}`);
    }
  }
  return counts;
}

const KEPT = 'kept (the target is as new or newer)';

/** Copies every record the target lacks, or holds in an older state; never deletes or changes the source. */
async function copy(from: SealedRecordStore, to: SealedRecordStore, err: (line: string) => void): Promise<Counts> {
  const counts = new Counts('copied', KEPT, 'failed');
  for (const id of await from.ids()) {
    try {
      const source = await from.read(id);
      if (!source) continue; // moved away meanwhile
      const copied = await exclusively(to, id, async () => {
        const target = await to.read(id);
        if (target && !isNewer(source.value, target.value)) return false;
        await durably(to, id, await to.write(id, source.value, target?.version));
        return true;
      });
      counts.add(copied ? 'copied' : KEPT);
    } catch (e) {
      counts.add('failed');
      err(`${id}: ${describe(e)}`);
    }
  }
  return counts;
}

/** Whether a state was written after another (by its updatedAt, which every write of the runtime sets). */
function isNewer(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const time = (v: Record<string, unknown>) => Date.parse(String(v.updatedAt ?? '')) || 0;
  return time(a) > time(b);
}

/** The record's claim (the file store's lock file against a running Node-RED) around a change. */
async function exclusively<T>(store: RecordStore, id: string, task: () => Promise<T>): Promise<T> {
  const release = await store.claim(id, { staleMs: 10_000, waitMs: 0 });
  try {
    return await task();
  } finally {
    await release();
  }
}

function describe(err: unknown): string {
  return isIiotAuthError(err) ? `${err.code}: ${err.message}` : `unexpected ${(err as Error)?.name ?? 'error'}`;
}

function summary(counts: Counts): string {
  return [...counts].map(([what, n]) => `${n} ${what}`).join(', ');
}

/** Runs one command; resolves with the exit code. */
export async function run(argv: string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  let stores: Stores | undefined;
  try {
    const args = parseArgs(argv);
    if (args.command === 'help') {
      out(USAGE);
      return 0;
    }
    stores = openStores(loadSettings(args), err);
    if (args.command === 'list') {
      const store = pick(stores, args.store ?? stores.used);
      const rows = await Promise.all((await store.ids()).map((id) => row(store, id)));
      out(args.json ? JSON.stringify(rows, null, 2) : rows.length ? table(rows) : `no agents in ${store.where}`);
      return rows.some((r) => r.problem) ? 1 : 0;
    }
    let counts: Counts;
    let where: string;
    if (args.command === 'reseal') {
      const store = pick(stores, args.store ?? stores.used);
      counts = await reseal(store, err);
      where = store.where;
    } else {
      const [from, to] = [pick(stores, args.from ?? 'file'), pick(stores, args.to ?? 'redis')];
      counts = await copy(from, to, err);
      where = `${from.where} to ${to.where}`;
    }
    out(`${args.command} ${where}: ${summary(counts)}`);
    return counts.failed ? 1 : 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`iiot-auth-agents: ${e.message} (--help shows the usage)`);
      return 2;
    }
    err(`iiot-auth-agents: ${describe(e)}`);
    return isIiotAuthError(e) && e.code === 'CONFIG_INVALID' ? 2 : 1;
  } finally {
    await stores?.release();
  }
}

/**
 * Waits for the store's replicas to hold the write (Redis with `minReplicas`):
 * a record re-sealed or copied is reported done only when a failover cannot
 * bring back the copy before it, which an old key may no longer open.
 */
async function durably(store: RecordStore, id: string, version: string): Promise<void> {
  if (store.minReplicas > 0) await store.acknowledge(id, version);
}

if (require.main === module) {
  run(
    process.argv.slice(2),
    (line) => process.stdout.write(`${line}\n`),
    (line) => process.stderr.write(`${line}\n`),
  ).then((code) => {
    process.exitCode = code;
  });
}
