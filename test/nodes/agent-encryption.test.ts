import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import helper from 'node-red-node-test-helper';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import { RedisRecordStore } from '../../src/core/redis-record-store.js';
import { SealedRecordStore } from '../../src/core/sealed-record-store.js';
import { sealedAgentStore } from '../../src/nodes/agent-encryption.js';
import { AGENT_RECORD_WORDS } from '../../src/nodes/agent-store.js';
import agentNode from '../../src/nodes/iiot-agent.js';
import insightsHubAgentNode from '../../src/nodes/iiot-insights-hub-agent.js';
import insightsHubAppNode from '../../src/nodes/iiot-insights-hub-app.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import type { RecordStore } from '../../src/core/record-store.js';
import { type AgentState, readAgentState } from '../../src/platforms/insights-hub-agent/state.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { agentFlow } from '../helpers/platform-flows.js';
import { RedisServer } from '../helpers/redis-server.js';
import { filesUnder, findSecrets } from '../helpers/secret-search.js';
import { TEST_BACKOFF } from '../helpers/settings.js';

const modules = [insightsHubAppNode, insightsHubAgentNode, agentNode, tokenNode, requestNode];
const KEY = randomBytes(32).toString('base64');
const ENCRYPTION = { keys: { current: { id: 'k1', key: KEY } } };

/** The flows as one (the test helper registers a core node type once per node: one catch node, catching for all). */
function oneFlow(flows: ReturnType<typeof agentFlow>[]): [ReturnType<typeof agentFlow>['nodes'], Record<string, Record<string, string>>] {
  const nodes = flows.flatMap((f) => f.nodes).filter((n, i, all) => n.type !== 'catch' || all.findIndex((m) => m.type === 'catch') === i);
  return [nodes, Object.assign({}, ...flows.map((f) => f.credentials))];
}

/** Every secret of a stored state: client secrets, registration access tokens, private keys. */
function secretsOf(state: AgentState): string[] {
  return [...state.registrations.flatMap((r) => [r.clientSecret, r.registrationAccessToken, r.privateKey]), state.pendingKey?.privateKey].filter(
    (s): s is string => typeof s === 'string' && s.length > 0,
  );
}

/** Agents onboarded and rotated in a real Node-RED runtime, their state sealed at rest in the file store and on Redis. */
describe('agent state encrypted at rest, in a Node-RED runtime', function () {
  this.timeout(90_000);
  let sandbox: Sandbox;
  let redis: RedisServer;
  let stateDir: string;
  const closing: RecordStore[] = [];

  before(async () => {
    sandbox = await startSandbox();
    redis = await RedisServer.start();
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-agent-sealed-'));
  });
  after(async () => {
    for (const store of closing) await store.close();
    await sandbox.stop();
    await redis.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await H.unload();
    await H.stop();
    sandbox.resetCalls();
  });

  /** Onboards a new sandbox agent per profile, takes a token, rotates and takes another; resolves with their client ids and IATs. */
  async function onboardAndRotate(profiles: Array<'SHARED_SECRET' | 'RSA_3072'>): Promise<Array<{ clientId: string; iat: string }>> {
    const agents = profiles.map((profile) => {
      const record = sandbox.agents.create({ securityProfile: profile });
      const boarding = sandbox.agents.boardingConfiguration(record.id);
      return { clientId: record.id, iat: boarding.content.iat, flow: agentFlow(sandbox, JSON.stringify(boarding), { withApp: false, profile }) };
    });
    await H.load(modules, ...oneFlow(agents.map((a) => a.flow)));
    for (const { clientId, flow: f } of agents) {
      await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
      assert.ok(((await H.answer(f.ids.token, f.ids.out, {})).token as { value: string }).value);
      await H.answer(f.ids.agent, f.ids.out, { action: 'rotate' });
      assert.ok(((await H.answer(f.ids.token, f.ids.out, {})).token as { value: string }).value);
      assert.equal(sandbox.agents.status(clientId).activeRegistration!.number, 2, 'the rotated credentials are in use');
    }
    return agents.map(({ clientId, iat }) => ({ clientId, iat }));
  }

  it('file store: no secret in the state folder after onboarding and rotation (both profiles); the agent reads it back', async () => {
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: stateDir, agentLockStaleMs: 2000, agentStore: { encryption: ENCRYPTION } } });
    const agents = await onboardAndRotate(['SHARED_SECRET', 'RSA_3072']);
    const store = sealedAgentStore(new FileRecordStore(stateDir, AGENT_RECORD_WORDS), ENCRYPTION, AGENT_RECORD_WORDS);
    const secrets: string[] = [];
    for (const { clientId, iat } of agents) {
      const { state } = (await readAgentState(store, clientId))!;
      assert.equal(state.registrations.length, 2);
      secrets.push(iat, ...secretsOf(state));
      const stored = JSON.parse(fs.readFileSync(path.join(stateDir, `${clientId}.json`), 'utf8')) as Record<string, unknown>;
      assert.equal(SealedRecordStore.sealedWith(stored), 'k1');
    }
    assert.ok(secrets.length >= 8);
    assert.deepEqual(findSecrets(Buffer.concat(filesUnder(stateDir).map((f) => f.bytes)), secrets), []);
    assert.deepEqual(H.leaks(secrets), []);
  });

  it('turning encryption on for an agent kept in plain text: it keeps working without onboarding again, and is sealed with its next write', async () => {
    const dir = path.join(stateDir, 'plain-first');
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: dir, agentLockStaleMs: 2000 } });
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const f = agentFlow(sandbox, JSON.stringify(sandbox.agents.boardingConfiguration(record.id)), { withApp: false });
    await H.load(modules, f.nodes, f.credentials);
    await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
    const file = path.join(dir, `${record.id}.json`);
    assert.equal(SealedRecordStore.sealedWith(JSON.parse(fs.readFileSync(file, 'utf8'))), undefined, 'plain');
    const plainSecrets = secretsOf((await readAgentState(new FileRecordStore(dir, AGENT_RECORD_WORDS), record.id))!.state);
    const registered = sandbox.calls('agents.register');
    await H.unload();
    await H.stop();

    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: dir, agentLockStaleMs: 2000, agentStore: { encryption: ENCRYPTION } } });
    await H.load(modules, f.nodes, f.credentials);
    assert.ok(((await H.answer(f.ids.token, f.ids.out, {})).token as { value: string }).value, 'a token with the plain record');
    await H.answer(f.ids.agent, f.ids.out, { action: 'rotate' });
    assert.ok(((await H.answer(f.ids.token, f.ids.out, {})).token as { value: string }).value);
    assert.equal(sandbox.calls('agents.register'), registered, 'never onboarded again');
    const stored = fs.readFileSync(file, 'utf8');
    assert.equal(SealedRecordStore.sealedWith(JSON.parse(stored)), 'k1');
    const state = (await readAgentState(sealedAgentStore(new FileRecordStore(dir, AGENT_RECORD_WORDS), ENCRYPTION, AGENT_RECORD_WORDS), record.id))!.state;
    assert.deepEqual(findSecrets(stored, [...plainSecrets, ...secretsOf(state)]), []);
  });

  it('a runtime without the key, or with another one: AGENT_STATE_ERROR saying what to do, no onboarding with the IAT, the state file unchanged', async () => {
    const dir = path.join(stateDir, 'keyed');
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const f = agentFlow(sandbox, JSON.stringify(sandbox.agents.boardingConfiguration(record.id)), { withApp: false });
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: dir, agentLockStaleMs: 2000, agentStore: { encryption: ENCRYPTION } } });
    await H.load(modules, f.nodes, f.credentials);
    await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
    const file = path.join(dir, `${record.id}.json`);
    const sealed = fs.readFileSync(file, 'utf8');
    const registered = sandbox.calls('agents.register');
    await H.unload();
    await H.stop();

    const cases: [unknown, RegExp][] = [
      [undefined, /is encrypted \(key "k1"\) but iiotAuth\.agentStore\.encryption is not set: set it in settings\.js with the key it was sealed with/],
      [{ keys: { current: { id: 'k1', key: randomBytes(32).toString('hex') } } }, /encrypted with another key than the one .* names "k1" \(a wrong key\)/],
      [{ key: randomBytes(32).toString('hex') }, /encrypted with the key "k1", which iiotAuth\.agentStore\.encryption does not have: add that key/],
    ];
    for (const [encryption, message] of cases) {
      await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: dir, agentLockStaleMs: 2000, agentStore: { encryption } } });
      await H.load(modules, f.nodes, f.credentials);
      for (const action of ['token', 'onboard', 'rotate']) {
        const error = await H.failure(f.ids.agent, f.ids.errors, { action });
        assert.equal(error.code, 'AGENT_STATE_ERROR', action);
        assert.match(error.message, message);
        assert.match(error.message, /it is kept as it is and never overwritten/);
      }
      assert.equal(sandbox.calls('agents.register'), registered, 'the IAT is not sent again');
      assert.equal(fs.readFileSync(file, 'utf8'), sealed, 'the state file is unchanged');
      await H.unload();
      await H.stop();
    }
    // With the key back, the agent works as before.
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: dir, agentLockStaleMs: 2000, agentStore: { encryption: ENCRYPTION } } });
    await H.load(modules, f.nodes, f.credentials);
    assert.ok(((await H.answer(f.ids.token, f.ids.out, {})).token as { value: string }).value);
  });

  it('Redis: no secret in the Redis values or its append-only file after onboarding and rotation', async () => {
    const keyPrefix = 'sealed:';
    await H.start({
      iiotAuth: {
        ...TEST_BACKOFF,
        agentLockStaleMs: 2000,
        agentStateDir: path.join(stateDir, 'unused'),
        agentStore: { redis: { url: redis.url, keyPrefix }, encryption: ENCRYPTION },
      },
    });
    const agents = await onboardAndRotate(['SHARED_SECRET', 'RSA_3072']);
    const store = sealedAgentStore(new RedisRecordStore({ url: redis.url, keyPrefix }, AGENT_RECORD_WORDS), ENCRYPTION, AGENT_RECORD_WORDS);
    closing.push(store);
    const secrets: string[] = [];
    const values: string[] = [];
    for (const { clientId, iat } of agents) {
      secrets.push(iat, ...secretsOf((await readAgentState(store, clientId))!.state));
      values.push(await redis.command('HGET', `${keyPrefix}record:${clientId}`, 'value'));
    }
    assert.ok(values.every((v) => v.includes('"$sealed"')));
    assert.deepEqual(findSecrets(Buffer.concat([Buffer.from(values.join('\n')), ...filesUnder(redis.dir).map((f) => f.bytes)]), secrets), []);
    assert.deepEqual(H.leaks(secrets), []);
    assert.ok(!H.emitted().includes('agent credentials are kept in'), 'no warning with a key');
  });

  it('Redis without a key: the log says once per runtime that a reader of Redis can take over every agent', async () => {
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentLockStaleMs: 2000, agentStore: { redis: { url: redis.url, keyPrefix: 'plain:' } } } });
    const flows = [1, 2].map(() => agentFlow(sandbox, JSON.stringify(sandbox.agents.boardingConfiguration(sandbox.agents.create({}).id)), { withApp: false }));
    await H.load(modules, ...oneFlow(flows));
    const warnings = (helper.log() as unknown as { getCalls(): Array<{ args: unknown[] }> })
      .getCalls()
      .map((call) => JSON.stringify(call.args))
      .filter((line) => line.includes('agent credentials are kept in'));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /whoever can read that Redis or its backups can take over every agent\. Set iiotAuth\.agentStore\.encryption/);
  });
});
