import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode } from '../../src/core/errors.js';
import { AgentErrorCode } from '../../src/platforms/insights-hub-agent/errors.js';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import { AGENT_RECORD_WORDS } from '../../src/nodes/agent-store.js';
import { replaceFile } from '../../src/core/private-folder.js';
import { isRecordConflict, KeyedMutex, type RecordStore } from '../../src/core/record-store.js';
import { RedisRecordStore } from '../../src/core/redis-record-store.js';
import {
  boardingConfigId,
  readAgentState,
  writeAgentState,
  KEPT_REGISTRATIONS,
  type AgentRegistration,
  type AgentState,
} from '../../src/platforms/insights-hub-agent/state.js';
import { RedisServer } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';

function registration(n: number): AgentRegistration {
  return {
    clientId: 'agent1',
    clientSecret: `secret-${n}`,
    clientSecretExpiresAt: 2_000_000_000 + n,
    registrationAccessToken: `rat-${n}`,
    registrationClientUri: 'https://southgate.example/api/agentmanagement/v3/register/agent1',
    tokenEndpointAuthMethod: 'client_secret_jwt',
    receivedAt: new Date().toISOString(),
    confirmed: false,
  };
}

function state(registrations: AgentRegistration[]): AgentState {
  return {
    format: 1,
    clientId: 'agent1',
    tenant: 'tenant1',
    baseUrl: 'https://southgate.example',
    profile: 'SHARED_SECRET',
    boardingConfigId: boardingConfigId('iat'),
    registrations,
    updatedAt: '',
  };
}

/** The agent's state functions over one record store, as the agent's record uses them. */
function stateStore(records: RecordStore) {
  return {
    records,
    read: (clientId: string) => readAgentState(records, clientId),
    write: (state: AgentState, expected: Parameters<typeof writeAgentState>[2], lease?: Parameters<typeof writeAgentState>[3]) =>
      writeAgentState(records, state, expected, lease),
  };
}

describe('file record store', () => {
  let dir: string;
  let records: FileRecordStore;
  let store: ReturnType<typeof stateStore>;
  beforeEach(() => {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-state-')), 'agents');
    records = new FileRecordStore(dir, AGENT_RECORD_WORDS);
    store = stateStore(records);
  });
  afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

  it('writes atomically with mode 0600 and reads it back; nothing left behind', async () => {
    assert.equal(await store.read('agent1'), undefined);
    await store.write(state([registration(1)]), undefined);
    const file = path.join(dir, 'agent1.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ['agent1.json'], 'no temporary file remains');
    const read = await store.read('agent1');
    assert.equal(read!.state.registrations[0]!.clientSecret, 'secret-1');
    assert.ok(read!.state.updatedAt);
  });

  it('reads a state file written before versions existed (its version is its digest)', async () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'agent1.json'), JSON.stringify(state([registration(1)])));
    const read = await store.read('agent1');
    assert.equal(read!.state.registrations.length, 1);
    assert.equal(await records.version('agent1'), read!.version);
  });

  it('never replaces a corrupt or foreign state file silently', async () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'agent1.json'), '{"format":1,"clientId":"agent1","registr');
    await assert.rejects(store.read('agent1'), { code: AgentErrorCode.AGENT_STATE_ERROR, message: /not valid JSON: restore it from a backup/ });
    fs.writeFileSync(path.join(dir, 'agent1.json'), JSON.stringify({ ...state([]), format: 99 }));
    await assert.rejects(store.read('agent1'), /format 99/);
    fs.writeFileSync(path.join(dir, 'agent1.json'), JSON.stringify({ ...state([]), clientId: 'other' }));
    await assert.rejects(store.read('agent1'), /belongs to another agent/);
  });

  it('refuses a client id that is not a safe file name', () => {
    for (const id of ['../evil', 'a/b', '.hidden', '']) assert.throws(() => records.filePath(id), { code: ErrorCode.CONFIG_INVALID });
  });

  it('reports a write that fails, with what to do', async () => {
    fs.writeFileSync(dir, 'a file where the state directory should be'); // fails for root too
    await assert.rejects(store.write(state([registration(1)]), undefined), { code: AgentErrorCode.AGENT_STATE_ERROR, message: /not used until it is saved/ });
  });

  it("a write replaces a link at the record's path instead of following it (a link put there after the read)", async () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const outside = path.join(path.dirname(dir), 'outside.json');
    fs.writeFileSync(outside, 'outside');
    const file = path.join(dir, 'agent1.json');
    fs.symlinkSync(outside, file);
    await replaceFile(file, 'new record with secret-2');
    assert.equal(fs.readFileSync(outside, 'utf8'), 'outside', 'nothing written through the link');
    assert.equal(fs.lstatSync(file).isFile(), true);
    assert.equal(fs.readFileSync(file, 'utf8'), 'new record with secret-2');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ['agent1.json'], 'no temporary file remains');
  });

  it("a FIFO or a folder at the record's path is refused at once (never waited on, never replaced)", async () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, 'agent1.json');
    spawnSync('mkfifo', [file]);
    assert.equal(fs.lstatSync(file).isFIFO(), true);
    await assert.rejects(store.read('agent1'), { code: AgentErrorCode.AGENT_STATE_ERROR, message: /is a special file, not a plain file/ });
    await assert.rejects(store.write(state([registration(1)]), undefined), { code: AgentErrorCode.AGENT_STATE_ERROR });
    assert.equal(fs.lstatSync(file).isFIFO(), true);
    fs.rmSync(file);
    fs.mkdirSync(file);
    await assert.rejects(store.read('agent1'), { code: AgentErrorCode.AGENT_STATE_ERROR, message: /a folder is in the way/ });
  });

  it('a claim keeps a second process away, and is taken over from one killed with SIGKILL', async function () {
    this.timeout(20_000);
    // A second process takes the lock and holds it until killed.
    const script = `
      const { FileRecordStore } = require(${JSON.stringify(require.resolve('../../src/core/file-record-store.js'))});
      const { AGENT_RECORD_WORDS } = require(${JSON.stringify(require.resolve('../../src/nodes/agent-store.js'))});
      new FileRecordStore(${JSON.stringify(dir)}, AGENT_RECORD_WORDS).claim('agent1', { staleMs: 2000 }).then(() => console.log('locked'));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve()));
    await assert.rejects(records.claim('agent1', { staleMs: 2000, waitMs: 0 }), (err: Error & { code: string }) => {
      assert.equal(err.code, AgentErrorCode.AGENT_LOCKED);
      assert.match(err.message, /in use by another Node-RED process/);
      return true;
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const release = await records.claim('agent1', { staleMs: 2000 }); // waits out the stale period
    await release();
  });
});

/** What both stores promise, run on each. */
for (const kind of ['file', 'redis'] as const) {
  describe(`${kind} record store: compare-and-set, locks, trimming`, function () {
    this.timeout(20_000);
    let redis: RedisServer | undefined;
    let root: string;
    const opened: RecordStore[] = [];
    let n = 0;
    before(async () => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-records-'));
      if (kind === 'redis') redis = await RedisServer.start();
    });
    after(async () => {
      await redis?.stop();
      fs.rmSync(root, { recursive: true, force: true });
    });
    afterEach(async () => {
      while (opened.length) await opened.pop()!.close();
    });
    /** A store (a second one sees the same records, as another instance would). */
    function open(prefix = `t${++n}:`): RecordStore {
      const store =
        kind === 'file'
          ? new FileRecordStore(path.join(root, prefix), AGENT_RECORD_WORDS)
          : new RedisRecordStore({ url: redis!.url, keyPrefix: prefix }, AGENT_RECORD_WORDS);
      opened.push(store);
      return store;
    }

    it(`keeps the newest ${KEPT_REGISTRATIONS} registrations`, async () => {
      const store = stateStore(open());
      await store.write(state([9, 8, 7, 6, 5, 4, 3].map(registration)), undefined);
      const read = await store.read('agent1');
      assert.deepEqual(
        read!.state.registrations.map((r) => r.registrationAccessToken),
        ['rat-9', 'rat-8', 'rat-7', 'rat-6', 'rat-5'],
      );
    });

    it('a write names the version it read: a stale one is refused, nothing is overwritten', async () => {
      const prefix = `t${++n}:`;
      const a = stateStore(open(prefix));
      const b = stateStore(kind === 'file' ? a.records : open(prefix));
      const first = await a.write(state([registration(1)]), undefined);
      await assert.rejects(b.write(state([registration(9)]), undefined), (err) => isRecordConflict(err) && err.reason === 'changed');
      const read = await b.read('agent1');
      assert.equal(read!.version, first.version);
      const second = await b.write(state([registration(2), registration(1)]), read!.version);
      await assert.rejects(a.write(state([registration(3)]), first.version), (err: Error & { code: string }) => {
        assert.ok(isRecordConflict(err));
        assert.equal(err.code, AgentErrorCode.AGENT_STATE_ERROR);
        assert.match(err.message, /changed while it was being updated .*: try again/);
        return true;
      });
      assert.equal((await a.read('agent1'))!.version, second.version);
      assert.equal(await a.records.version('agent1'), second.version);
    });

    if (kind === 'redis') {
      it("one lock holder at a time; a crashed holder's lock is taken over after its expiry; a write with a lost lease is refused", async () => {
        const prefix = `t${++n}:`;
        const a = open(prefix);
        const b = open(prefix);
        const first = (await a.lock('agent1', { ttlMs: 1000, waitMs: 0 }))!;
        assert.ok(first);
        assert.equal(await b.lock('agent1', { ttlMs: 1000, waitMs: 0 }), undefined, 'held by the first');
        // Renewed while held: still held after more than its expiry.
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(first.lost, false);
        assert.equal(await b.lock('agent1', { ttlMs: 1000, waitMs: 0 }), undefined);
        // The holder "crashes": its connection goes, no renewal, the lock expires and is taken over.
        await a.close();
        const second = (await b.lock('agent1', { ttlMs: 1000, waitMs: 5000 }))!;
        assert.ok(second.fence > first.fence, 'fences grow');
        assert.equal(first.lost, true);
        const version = await b.write('agent1', { format: 1 }, undefined, second);
        const c = open(prefix);
        await assert.rejects(c.write('agent1', { format: 1, late: true }, version, first), (err) => isRecordConflict(err) && err.reason === 'lease-lost');
        await second.release();
        const third = await c.lock('agent1', { ttlMs: 1000, waitMs: 0 });
        assert.ok(third, 'released locks are free at once');
        await third.release();
      });

      it('Redis unreachable or gone: AGENT_STATE_ERROR that says what to do, no library message, no password; back to work when it returns', async () => {
        const check = (err: Error & { code: string }) => {
          assert.equal(err.code, AgentErrorCode.AGENT_STATE_ERROR);
          assert.match(err.message, /check that Redis runs/);
          assert.doesNotMatch(err.message, /pa55word|ECONNREFUSED|Socket|Client/);
          return true;
        };
        // Never reachable (a port nothing listens on), with a password in the URL.
        const nowhere = new RedisRecordStore({ url: `redis://:pa55word@127.0.0.1:${redis!.port + 1}`, keyPrefix: 'x:', timeoutMs: 500 }, AGENT_RECORD_WORDS);
        opened.push(nowhere);
        assert.doesNotMatch(nowhere.where, /pa55word/);
        await assert.rejects(nowhere.read('agent1'), check);
        // Reachable, then gone.
        const store = new RedisRecordStore({ url: redis!.url, keyPrefix: `t${++n}:`, timeoutMs: 500 }, AGENT_RECORD_WORDS);
        opened.push(store);
        assert.equal(await store.read('agent1'), undefined);
        await redis!.kill();
        try {
          await assert.rejects(store.read('agent1'), check);
          await assert.rejects(store.write('agent1', { format: 1 }, undefined), check);
          await assert.rejects(store.lock('agent1', { ttlMs: 1000, waitMs: 0 }), check);
        } finally {
          await redis!.start();
        }
        // The client reconnects by itself (within a second or so): no restart of Node-RED needed.
        let back: unknown = 'not read yet';
        for (let i = 0; i < 20 && back !== undefined; i += 1) back = await store.read('agent1').catch((err: Error) => err);
        assert.equal(back, undefined, 'works again once Redis is back');
      });
    }
  });
}

describe('acknowledged writes (WAIT for replicas)', function () {
  this.timeout(30_000);
  let primary: RedisServer;
  let replica: RedisServer;
  const opened: RecordStore[] = [];
  before(async () => {
    primary = await RedisServer.start();
    replica = await RedisServer.start({ replicaOf: primary.port });
    const online = async () => String(await primary.query('INFO', 'replication')).includes(`port=${replica.port},state=online`);
    await waitFor(online, { timeoutMs: 10_000, intervalMs: 50, what: 'the replica to be in sync' });
  });
  after(async () => {
    while (opened.length) await opened.pop()!.close();
    await replica?.stop();
    await primary?.stop();
  });
  /** A wait that should succeed gets a long limit (a loaded machine delays the replica's answer); one meant to run out, a short one. */
  function open(minReplicas: number, prefix: string, replicaTimeoutMs = 10_000): RedisRecordStore {
    const store = new RedisRecordStore({ url: primary.url, keyPrefix: prefix, minReplicas, replicaTimeoutMs }, AGENT_RECORD_WORDS);
    opened.push(store);
    return store;
  }
  const unreplicated = (pattern: RegExp) => (err: Error & { code: string }) => {
    assert.equal(err.code, AgentErrorCode.AGENT_STATE_UNREPLICATED);
    assert.match(err.message, pattern);
    return true;
  };

  it('resolves once the replica holds the record at that version; refuses a version that is no longer current', async () => {
    const store = open(1, 'ack1:');
    const version = await store.write('agent1', { format: 1 }, undefined);
    await store.acknowledge('agent1', version);
    const mark = await replica.query('HGET', 'ack1:record:agent1', 'acknowledged');
    assert.equal(mark, version, 'the replica holds the acknowledged version');
    const newer = await store.write('agent1', { format: 1, n: 2 }, version);
    await assert.rejects(store.acknowledge('agent1', version), unreplicated(/the record changed before the replicas acknowledged it/));
    await store.acknowledge('agent1', newer);
  });

  it('too few replicas within replicaTimeoutMs: AGENT_STATE_UNREPLICATED that says how many and what to do; the write stays', async () => {
    const store = open(2, 'ack2:', 300);
    const version = await store.write('agent1', { format: 1 }, undefined);
    await assert.rejects(
      store.acknowledge('agent1', version),
      unreplicated(/1 of 2 replica\(s\) acknowledged them within 300 ms.*check that the replicas run/),
    );
    assert.equal(await store.version('agent1'), version);
    replica.pause();
    try {
      await assert.rejects(open(1, 'ack2:', 300).acknowledge('agent1', version), unreplicated(/0 of 1 replica\(s\)/));
    } finally {
      replica.resume();
    }
  });

  it('nothing to wait for with minReplicas 0, and on the file store', async () => {
    const store = open(0, 'ack3:');
    assert.equal(store.minReplicas, 0);
    replica.pause();
    try {
      await store.acknowledge('agent1', await store.write('agent1', { format: 1 }, undefined));
    } finally {
      replica.resume();
    }
    assert.equal(new FileRecordStore(os.tmpdir(), AGENT_RECORD_WORDS).minReplicas, 0);
  });
});

describe('KeyedMutex', () => {
  it('runs tasks of one key one at a time, other keys in parallel, and survives a failing task', async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    const task =
      (name: string, ms: number, fail = false) =>
      async () => {
        log.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`end ${name}`);
        if (fail) throw new Error(name);
        return name;
      };
    const results = await Promise.allSettled([mutex.run('a', task('a1', 30, true)), mutex.run('a', task('a2', 10)), mutex.run('b', task('b1', 5))]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'fulfilled', 'fulfilled'],
    );
    assert.deepEqual(log, ['start a1', 'start b1', 'end b1', 'end a1', 'start a2', 'end a2']);
  });
});
