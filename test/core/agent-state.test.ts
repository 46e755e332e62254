import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentStateStore, boardingConfigId, KeyedMutex, KEPT_REGISTRATIONS, type AgentRegistration, type AgentState } from '../../src/core/agent-state.js';
import { ErrorCode } from '../../src/core/errors.js';

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

describe('AgentStateStore', () => {
  let dir: string;
  let store: AgentStateStore;
  beforeEach(() => {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-state-')), 'agents');
    store = new AgentStateStore(dir);
  });
  afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

  it('writes atomically with mode 0600 and reads it back; nothing left behind', async () => {
    assert.equal(await store.read('agent1'), undefined);
    await store.write(state([registration(1)]));
    const file = path.join(dir, 'agent1.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ['agent1.json'], 'no temporary file remains');
    const read = await store.read('agent1');
    assert.equal(read!.registrations[0]!.clientSecret, 'secret-1');
    assert.ok(read!.updatedAt);
  });

  it(`keeps the newest ${KEPT_REGISTRATIONS} registrations`, async () => {
    await store.write(state([9, 8, 7, 6, 5, 4, 3].map(registration)));
    const read = await store.read('agent1');
    assert.deepEqual(read!.registrations.map((r) => r.registrationAccessToken), ['rat-9', 'rat-8', 'rat-7', 'rat-6', 'rat-5']);
  });

  it('never replaces a corrupt or foreign state file silently', async () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'agent1.json'), '{"format":1,"clientId":"agent1","registr');
    await assert.rejects(store.read('agent1'), { code: ErrorCode.AGENT_STATE_ERROR, message: /not valid JSON: restore it from a backup/ });
    fs.writeFileSync(path.join(dir, 'agent1.json'), JSON.stringify({ ...state([]), format: 99 }));
    await assert.rejects(store.read('agent1'), /format 99/);
    fs.writeFileSync(path.join(dir, 'agent1.json'), JSON.stringify({ ...state([]), clientId: 'other' }));
    await assert.rejects(store.read('agent1'), /belongs to another agent/);
  });

  it('refuses a client id that is not a safe file name', () => {
    for (const id of ['../evil', 'a/b', '.hidden', '']) assert.throws(() => store.filePath(id), { code: ErrorCode.CONFIG_INVALID });
  });

  it('reports a write that fails, with what to do', async () => {
    fs.writeFileSync(dir, 'a file where the state directory should be'); // fails for root too
    await assert.rejects(store.write(state([registration(1)])), { code: ErrorCode.AGENT_STATE_ERROR, message: /not used until it is saved/ });
  });

  it('locks an agent against a second process, and takes over the lock of one killed with SIGKILL', async function () {
    this.timeout(20_000);
    // A second process takes the lock and holds it until killed.
    const script = `
      const { AgentStateStore } = require(${JSON.stringify(require.resolve('../../src/core/agent-state.js'))});
      new AgentStateStore(${JSON.stringify(dir)}).lock('agent1', { staleMs: 2000 }).then(() => console.log('locked'));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve()));
    await assert.rejects(store.lock('agent1', { staleMs: 2000, waitMs: 0 }), (err: Error & { code: string }) => {
      assert.equal(err.code, ErrorCode.AGENT_LOCKED);
      assert.match(err.message, /in use by another Node-RED process/);
      return true;
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const release = await store.lock('agent1', { staleMs: 2000 }); // waits out the stale period
    await release();
  });
});

describe('KeyedMutex', () => {
  it('runs tasks of one key one at a time, other keys in parallel, and survives a failing task', async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    const task = (name: string, ms: number, fail = false) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([
      mutex.run('a', task('a1', 30, true)),
      mutex.run('a', task('a2', 10)),
      mutex.run('b', task('b1', 5)),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'fulfilled', 'fulfilled']);
    assert.deepEqual(log, ['start a1', 'start b1', 'end b1', 'end a1', 'start a2', 'end a2']);
  });
});
