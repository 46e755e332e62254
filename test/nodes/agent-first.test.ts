import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import agentNode from '../../src/nodes/iiot-agent.js';
import insightsHubAgentNode from '../../src/nodes/iiot-insights-hub-agent.js';
import insightsHubAppNode from '../../src/nodes/iiot-insights-hub-app.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H, uid, type FlowNode } from '../helpers/flow.js';
import { insightsHubAppConfig, insightsHubAppCredentials } from '../helpers/platform-flows.js';
import { TEST_BACKOFF } from '../helpers/settings.js';

const modules = [insightsHubAppNode, insightsHubAgentNode, agentNode, tokenNode];

/**
 * The first agent, from a flow: the app-side actions of onboard agent work
 * with an Insights Hub app config node alone (no agent config node yet), so a
 * flow creates the agent and fetches its boarding configuration; pasted into
 * an agent config node, it onboards.
 */
describe('Insights Hub agent: the first agent from a flow (app config alone)', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  let stateDir: string;

  before(async () => {
    sandbox = await startSandbox();
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-agent-first-'));
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: stateDir } });
  });
  after(async () => {
    await H.stop();
    await sandbox.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  afterEach(() => H.unload());

  function appOnly(extra: FlowNode[] = [], extraCredentials: Record<string, Record<string, string>> = {}, agentNodeProps: Record<string, unknown> = {}) {
    const ids = { app: uid('app'), agent: uid('ag'), out: uid('out'), errors: uid('err') };
    const nodes: FlowNode[] = [
      insightsHubAppConfig(ids.app, sandbox),
      { id: ids.agent, type: 'iiot-agent', insightsHubApp: ids.app, insightsHubAgent: '', action: 'msg', ...agentNodeProps, wires: [[ids.out]] },
      { id: ids.out, type: 'helper' },
      { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
      { id: ids.errors, type: 'helper' },
      ...extra,
    ];
    return { ids, nodes, credentials: { [ids.app]: insightsHubAppCredentials(sandbox), ...extraCredentials } };
  }

  it('creates an agent, fetches its boarding configuration and status; an agent config node with it onboards; then offboard and delete', async () => {
    const f = appOnly();
    await H.load(modules, f.nodes, f.credentials);
    const created = await H.answer(f.ids.agent, f.ids.out, {
      action: 'create',
      payload: { name: 'line 4 press', entityId: 'e0f1c2d3a4b5c6d7e8f9a0b1c2d3e4f5', securityProfile: 'SHARED_SECRET' },
    });
    const agentId = (created.payload as { id: string }).id;
    assert.ok(agentId);
    assert.equal(created.agentId, agentId, 'create names the new agent in msg.agentId, for the next node');

    // The message goes on: the next action acts on msg.agentId.
    const boarding = await H.answer(f.ids.agent, f.ids.out, { ...created, action: 'boarding-config' });
    const content = (boarding.payload as { content: { clientId: string; iat: string } }).content;
    assert.equal(content.clientId, agentId);
    const before = await H.answer(f.ids.agent, f.ids.out, { action: 'boarding-status', agentId });
    assert.equal((before.payload as { status: string }).status, 'NOT_ONBOARDED');
    await H.unload();

    // The boarding configuration pasted into an agent config node (credentials), deployed: it onboards.
    const agentConfig = uid('agc');
    const onboarder = uid('onb');
    const g = appOnly(
      [
        { id: agentConfig, type: 'iiot-insights-hub-agent', profile: 'SHARED_SECRET', app: '' },
        { id: onboarder, type: 'iiot-agent', insightsHubAgent: agentConfig, action: 'onboard', wires: [[]] },
        { id: `${onboarder}t`, type: 'iiot-token', platform: 'insights-hub-agent', insightsHubAgent: agentConfig, wires: [[]] },
      ],
      { [agentConfig]: { boardingConfig: JSON.stringify(boarding.payload) } },
    );
    for (const id of [onboarder, `${onboarder}t`]) (g.nodes.find((n) => n.id === id)!.wires as string[][])[0] = [g.ids.out];
    await H.load(modules, g.nodes, g.credentials);
    const onboarded = await H.answer(onboarder, g.ids.out, {});
    assert.equal((onboarded.payload as { onboarded: boolean }).onboarded, true);
    // Its first token completes the onboarding, as the platform sees it.
    assert.equal(((await H.answer(`${onboarder}t`, g.ids.out, {})).token as { platform: string }).platform, 'insights-hub-agent');
    const after = await H.answer(g.ids.agent, g.ids.out, { action: 'boarding-status', agentId });
    assert.equal((after.payload as { status: string }).status, 'ONBOARDED');
    assert.equal((await H.answer(g.ids.agent, g.ids.out, { action: 'offboard', agentId })).payload && true, true);
    assert.deepEqual((await H.answer(g.ids.agent, g.ids.out, { action: 'delete', agentId })).payload, { agentId, deleted: true });
    assert.deepEqual(H.leaks([content.iat, sandbox.demo.insightsHubApp.clientSecret]), []);
  });

  it('without msg.agentId and without an agent config node, an app-side action says what to set', async () => {
    const f = appOnly();
    await H.load(modules, f.nodes, f.credentials);
    const err = await H.failure(f.ids.agent, f.ids.errors, { action: 'boarding-status' });
    assert.equal(err.code, 'INPUT_INVALID');
    assert.match(err.message, /msg\.agentId is missing/);
  });

  it('an agent-side action still needs an agent config node', async () => {
    const f = appOnly();
    await H.load(modules, f.nodes, f.credentials);
    const err = await H.failure(f.ids.agent, f.ids.errors, { action: 'onboard' });
    assert.equal(err.code, 'CONFIG_MISSING');
    assert.match(err.message, /no Insights Hub agent config node is selected/);
  });

  it('with neither config node, an app-side action names the app config', async () => {
    const f = appOnly([], {}, { insightsHubApp: '' });
    await H.load(modules, f.nodes, f.credentials);
    const err = await H.failure(f.ids.agent, f.ids.errors, { action: 'create', payload: { name: 'x', entityId: 'e0f1c2d3a4b5c6d7e8f9a0b1c2d3e4f5' } });
    assert.equal(err.code, 'CONFIG_MISSING');
    assert.match(err.message, /needs an Insights Hub app config: select one in this node/);
  });
});
