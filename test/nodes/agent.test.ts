import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import agentNode from '../../src/nodes/iiot-agent.js';
import insightsHubAgentNode from '../../src/nodes/iiot-insights-hub-agent.js';
import insightsHubAppNode from '../../src/nodes/iiot-insights-hub-app.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { type AgentFlowOptions, agentFlow as sharedAgentFlow } from '../helpers/platform-flows.js';
import { TEST_BACKOFF } from '../helpers/settings.js';

const modules = [insightsHubAppNode, insightsHubAgentNode, agentNode, tokenNode, requestNode];

/** The onboard agent node and agent support in get token / authenticated request, in a Node-RED runtime. */
describe('Insights Hub agent nodes', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  let stateDir: string;

  before(async () => {
    sandbox = await startSandbox();
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-agent-nodes-'));
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: stateDir, agentLockStaleMs: 2000 } });
  });
  after(async () => {
    await H.stop();
    await sandbox.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await H.unload();
    sandbox.clearFaults();
    sandbox.resetCalls();
  });

  /** The shared agent flow; the agent config references the app config only where a test asks (withApp). */
  const agentFlow = (boardingConfig: string, options: AgentFlowOptions = {}) => sharedAgentFlow(sandbox, boardingConfig, { withApp: false, ...options });

  it('onboards, reports status, gives tokens to get token and authenticated request, and never shows a secret', async () => {
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const boarding = sandbox.agents.boardingConfiguration(record.id);
    const f = agentFlow(JSON.stringify(boarding));
    await H.load(modules, f.nodes, f.credentials);

    const onboarded = await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
    assert.equal((onboarded.payload as { onboarded: boolean }).onboarded, true);
    assert.equal((onboarded.payload as { alreadyOnboarded: boolean }).alreadyOnboarded, false);
    const again = await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
    assert.equal((again.payload as { alreadyOnboarded: boolean }).alreadyOnboarded, true);
    assert.equal(sandbox.calls('agents.register'), 1);

    const tokenMsg = await H.answer(f.ids.token, f.ids.out, {});
    assert.equal((tokenMsg.token as { platform: string }).platform, 'insights-hub-agent');

    const dsc = await H.answer(f.ids.request, f.ids.out, { url: `/api/agentmanagement/v3/agents/${record.id}/dataSourceConfiguration` });
    assert.ok([200, 404].includes(dsc.statusCode as number), String(dsc.statusCode));

    const status = await H.answer(f.ids.agent, f.ids.out, { action: 'status' });
    const payload = status.payload as { onboarded: boolean; clientSecretExpiresAt: string; tokenExpiresAt: string };
    assert.equal(payload.onboarded, true);
    assert.ok(payload.clientSecretExpiresAt && payload.tokenExpiresAt);

    const rotated = await H.answer(f.ids.agent, f.ids.out, { action: 'rotate' });
    assert.ok((rotated.payload as { lastRotationAt: string }).lastRotationAt);
    assert.equal(sandbox.agents.status(record.id).activeRegistration!.number, 2, 'the rotated credentials produced a token');

    const state = JSON.parse(fs.readFileSync(path.join(stateDir, `${record.id}.json`), 'utf8')) as {
      registrations: Array<{ clientSecret: string; registrationAccessToken: string }>;
    };
    const secrets = [boarding.content.iat, ...state.registrations.flatMap((r) => [r.clientSecret, r.registrationAccessToken])];
    assert.deepEqual(H.leaks(secrets), []);
  });

  it('reads and writes the data source configuration, fetching the eTag when unknown; a stale eTag is a clear error', async () => {
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const f = agentFlow(JSON.stringify(sandbox.agents.boardingConfiguration(record.id)));
    await H.load(modules, f.nodes, f.credentials);
    const config = {
      configurationId: 'cfg-1',
      dataSources: [{ name: 'press', dataPoints: [{ id: 'dp1', name: 'pressure', type: 'DOUBLE', unit: 'bar' }] }],
    };
    const saved = await H.answer(f.ids.agent, f.ids.out, { action: 'put-data-source-config', payload: config });
    const firstETag = saved.eTag;
    assert.ok(firstETag !== undefined);
    const read = await H.answer(f.ids.agent, f.ids.out, { action: 'get-data-source-config' });
    assert.equal((read.payload as { configurationId: string }).configurationId, 'cfg-1');
    assert.equal(read.eTag, firstETag);
    await H.answer(f.ids.agent, f.ids.out, { action: 'put-data-source-config', payload: { ...config, configurationId: 'cfg-2' } });
    const stale = await H.failure(f.ids.agent, f.ids.errors, { action: 'put-data-source-config', payload: config, eTag: firstETag });
    assert.equal(stale.code, 'PRECONDITION_FAILED');
    assert.match(stale.message, /changed meanwhile .* read it again and re-apply the change/);
    const invalid = await H.failure(f.ids.agent, f.ids.errors, {
      action: 'put-data-source-config',
      payload: { configurationId: 'x', dataSources: [{ name: 'a', dataPoints: [{ id: '1', name: 'n', type: 'FLOAT', unit: '' }] }] },
    });
    assert.match(invalid.message, /type is not one of INT, LONG, DOUBLE/);
  });

  it('app-side actions: create, boarding configuration and status, offboard, delete', async () => {
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const f = agentFlow(JSON.stringify(sandbox.agents.boardingConfiguration(record.id)), { withApp: true });
    await H.load(modules, f.nodes, f.credentials);
    // entityId is required (the asset the agent belongs to): checked before anything is sent.
    sandbox.resetCalls();
    const noEntity = await H.failure(f.ids.agent, f.ids.errors, { action: 'create', payload: { name: 'line 4 press' } });
    assert.equal(noEntity.code, 'INPUT_INVALID');
    assert.match(noEntity.message, /msg\.payload\.entityId is missing: it is the id of the asset the agent belongs to, as Asset Manager shows it/);
    assert.equal(sandbox.calls('agents.admin'), 0, 'nothing was sent');
    assert.equal(sandbox.calls('insightsHub.token'), 0, 'not even a token request');
    const created = await H.answer(f.ids.agent, f.ids.out, {
      action: 'create',
      payload: { name: 'line 4 press', entityId: 'f3a9c1d2e4b5a6978877665544332211' },
    });
    assert.equal((created.payload as { entityId: string }).entityId, 'f3a9c1d2e4b5a6978877665544332211');
    const newId = (created.payload as { id: string }).id;
    assert.ok(newId);
    const config = await H.answer(f.ids.agent, f.ids.out, { action: 'boarding-config', agentId: newId });
    assert.equal((config.payload as { content: { clientId: string } }).content.clientId, newId);
    const boardingStatus = await H.answer(f.ids.agent, f.ids.out, { action: 'boarding-status', agentId: newId });
    assert.equal((boardingStatus.payload as { status: string }).status, 'NOT_ONBOARDED');
    await H.answer(f.ids.agent, f.ids.out, { action: 'token' }); // onboards on first use
    const own = await H.answer(f.ids.agent, f.ids.out, { action: 'boarding-status' }); // no msg.agentId: the node's own agent
    assert.equal((own.payload as { status: string }).status, 'ONBOARDED');
    const offboarded = await H.answer(f.ids.agent, f.ids.out, { action: 'offboard', agentId: newId });
    assert.ok((offboarded.payload as { status: string }).status);
    const deleted = await H.answer(f.ids.agent, f.ids.out, { action: 'delete', agentId: newId });
    assert.deepEqual(deleted.payload, { agentId: newId, deleted: true });
    const gone = await H.failure(f.ids.agent, f.ids.errors, { action: 'boarding-status', agentId: newId });
    assert.equal(gone.code, 'NOT_FOUND');
  });

  it('offboarding its own agent retires the stored credentials: onboarding then asks for a new boarding configuration', async () => {
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const f = agentFlow(JSON.stringify(sandbox.agents.boardingConfiguration(record.id)), { withApp: true });
    await H.load(modules, f.nodes, f.credentials);
    await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
    await H.answer(f.ids.agent, f.ids.out, { action: 'offboard' });
    const status = await H.answer(f.ids.agent, f.ids.out, { action: 'status' });
    assert.equal((status.payload as { onboarded: boolean }).onboarded, false);
    const again = await H.failure(f.ids.agent, f.ids.errors, { action: 'onboard' });
    assert.equal(again.code, 'OFFBOARDED');
    assert.match(again.message, /was offboarded on \d{4}-\d\d-\d\d: download a new boarding configuration/);
    const tokenError = await H.failure(f.ids.token, f.ids.errors, {});
    assert.equal(tokenError.code, 'OFFBOARDED', 'no stale token is handed out');
    const state = JSON.parse(fs.readFileSync(path.join(stateDir, `${record.id}.json`), 'utf8')) as { offboardedAt?: string; registrations: unknown[] };
    assert.ok(state.offboardedAt && state.registrations.length === 1, 'the state is kept, marked');
  });

  it('app-side actions without an app config, and unknown actions, are clear errors', async () => {
    const record = sandbox.agents.create();
    const f = agentFlow(JSON.stringify(sandbox.agents.boardingConfiguration(record.id)));
    await H.load(modules, f.nodes, f.credentials);
    assert.match((await H.failure(f.ids.agent, f.ids.errors, { action: 'create', payload: { name: 'x' } })).message, /needs an Insights Hub app config/);
    assert.match((await H.failure(f.ids.agent, f.ids.errors, { action: 'explode' })).message, /action "explode" is not one of onboard, rotate/);
  });

  it('a broken boarding configuration or a mismatched profile is a config error that never quotes the IAT', async () => {
    const record = sandbox.agents.create({ securityProfile: 'RSA_3072' });
    const boarding = sandbox.agents.boardingConfiguration(record.id);
    const broken = JSON.stringify(boarding).slice(0, -5);
    const f = agentFlow(broken);
    await H.load(modules, f.nodes, f.credentials);
    assert.match((await H.failure(f.ids.agent, f.ids.errors, { action: 'onboard' })).message, /boarding configuration is not valid JSON/);
    await H.unload();
    const mismatched = agentFlow(JSON.stringify(boarding), { profile: 'SHARED_SECRET' });
    await H.load(modules, mismatched.nodes, mismatched.credentials);
    assert.match(
      (await H.failure(mismatched.ids.agent, mismatched.ids.errors, { action: 'onboard' })).message,
      /is for RSA_3072, but the node is set to SHARED_SECRET/,
    );
    assert.deepEqual(H.leaks([boarding.content.iat]), []);
  });

  it('RSA_3072 with a generated key kept in the state file, not in the flow', async () => {
    const record = sandbox.agents.create({ securityProfile: 'RSA_3072' });
    const f = agentFlow(JSON.stringify(sandbox.agents.boardingConfiguration(record.id)), { profile: 'RSA_3072' });
    await H.load(modules, f.nodes, f.credentials);
    const tokenMsg = await H.answer(f.ids.agent, f.ids.out, { action: 'token' });
    assert.ok((tokenMsg.token as { value: string }).value);
    const state = JSON.parse(fs.readFileSync(path.join(stateDir, `${record.id}.json`), 'utf8')) as { registrations: Array<{ privateKey: string }> };
    assert.match(state.registrations[0]!.privateKey, /BEGIN PRIVATE KEY/);
    assert.deepEqual(H.leaks([state.registrations[0]!.privateKey.split('\n')[1]!]), []);
  });
});
