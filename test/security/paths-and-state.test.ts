import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AgentErrorCode } from '../../src/platforms/insights-hub-agent/errors.js';
import { buildClientAssertion } from '../../src/platforms/insights-hub-agent/protocol.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H, uid, type FlowNode } from '../helpers/flow.js';
import { PLATFORM_CASES, platformFlow } from '../helpers/platform-flows.js';
import { agentFlow, ALL_MODULES, assertNoLeaks, expectError, loadAgent, outcomeOf, securitySuite, storedSecrets } from './harness.js';

/** Ids and paths an attacker (or a careless upstream node) puts on a message. */
const BAD_IDS: unknown[] = [
  '.',
  '..',
  '...',
  '../x',
  'a/b',
  '/abs',
  'a\\b',
  '..\\x',
  '%2f',
  '%2F',
  '%2e',
  '%2E%2E',
  '%252e%252e',
  '..%2f',
  '%5c',
  'a?b',
  'a#b',
  'a b',
  5,
  { id: 'x' },
];

const DOT_URLS = [
  '/../x',
  '..',
  '../x',
  '/%2e%2e/x',
  '/%2E%2E/x',
  '/.%2e/x',
  '/%2e./x',
  '/%252e%252e/x',
  '/..%2fx',
  '/..%2Fx',
  '/..\\x',
  '/api/../../x',
  '/a/%2e%2e/%2e%2e/x',
];

/**
 * Attack: ids with dot segments or slashes move a call to another resource
 * (an offboard to `/boarding/offboard`, a delete to the collection); a
 * relative URL climbs out of the platform's base path with its session.
 * And: broken state on disk used to surface as raw Node.js or jose errors.
 */
describe('security: ids and paths stay where they belong; state errors have a code', function () {
  this.timeout(60_000);
  const suite = securitySuite('paths');
  let sandbox: Sandbox;
  before(() => {
    sandbox = suite.sandbox;
  });
  const settings = suite.settings;

  describe('msg.agentId must be one plain path segment (INPUT_INVALID, nothing sent)', () => {
    const actions = ['boarding-config', 'boarding-status', 'offboard', 'delete'];
    for (const action of actions) {
      it(`${action}: ${BAD_IDS.length} bad ids`, async () => {
        const { flow, iat } = await loadAgent(sandbox);
        for (const agentId of BAD_IDS) {
          const outcome = await outcomeOf(flow.ids, () => H.node(flow.ids.agent).receive({ action, agentId }));
          const error = expectError(outcome, 'INPUT_INVALID', `${action} ${JSON.stringify(agentId)}`);
          assert.match(error.message, /msg\.agentId|agent id/);
        }
        assert.equal(sandbox.calls('agents.admin'), 0, 'no agent management call');
        assert.equal(sandbox.calls('insightsHub.token'), 0, 'not even an app token was fetched');
        assertNoLeaks([iat, sandbox.demo.insightsHubApp.clientSecret], action);
      });
    }
  });

  describe('msg.identity must name one app registration (INPUT_INVALID, nothing sent)', () => {
    const actions = ['get', 'update', 'delete', 'regenerate-secret'];
    for (const action of actions) {
      it(`${action}: ${BAD_IDS.length + 2} bad identities`, async () => {
        const c = PLATFORM_CASES.find((p) => p.platform === 'datatrails')!;
        const ids = { config: uid('cfg'), node: uid('app'), out: uid('out'), errors: uid('err') };
        const nodes: FlowNode[] = [
          { id: ids.config, type: 'iiot-datatrails', ...c.config(sandbox) },
          { id: ids.node, type: 'iiot-app-registration', platform: 'datatrails', dataTrails: ids.config, action: 'msg', wires: [[ids.out]] },
          { id: ids.out, type: 'helper' },
          { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
          { id: ids.errors, type: 'helper' },
        ];
        await H.load(ALL_MODULES, nodes, { [ids.config]: c.credentials(sandbox) });
        const identities = [...BAD_IDS, 'applications/..', 'applications/../d1fb6c87-faa9-4d56-b2fd-a5b70a9af065'];
        for (const identity of identities) {
          const outcome = await outcomeOf(ids, () => H.node(ids.node).receive({ action, identity, payload: { display_name: 'x' } }));
          expectError(outcome, 'INPUT_INVALID', `${action} ${JSON.stringify(identity)}`);
        }
        assert.equal(sandbox.calls('dataTrails.applications'), 0);
        assert.equal(sandbox.calls('dataTrails.token'), 0);
        assertNoLeaks(c.secrets(sandbox), action);
      });
    }
  });

  describe(`a relative URL that climbs above the base path (${DOT_URLS.length} forms): INPUT_INVALID, nothing sent`, () => {
    for (const c of PLATFORM_CASES) {
      it(c.platform, async () => {
        const f = platformFlow(c, sandbox, { request: { url: '' } });
        await H.load(ALL_MODULES, f.nodes, f.credentials);
        for (const url of DOT_URLS) {
          const error = expectError(await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ url })), 'INPUT_INVALID', `${c.platform} ${url}`);
          assert.match(error.message, /climbs above the platform's base path/);
        }
        assert.equal(sandbox.calls(c.tokenEndpoint), 0, 'no token was even fetched');
        assert.equal(sandbox.calls(c.apiEndpoint), 0);
        assertNoLeaks(c.secrets(sandbox), c.platform);
      });
    }

    it("the node's URL template filled from the message climbs too: refused", async () => {
      const c = PLATFORM_CASES.find((p) => p.platform === 'mbp')!;
      const f = platformFlow(c, sandbox, { request: { url: '/api/devices/{{{deviceId}}}' } });
      await H.load(ALL_MODULES, f.nodes, f.credentials);
      for (const deviceId of ['../../../x', '..%2F..%2F..%2Fx', '%2e%2e/%2e%2e/%2e%2e/x']) {
        expectError(await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ deviceId })), 'INPUT_INVALID', deviceId);
      }
      assert.equal(sandbox.calls(c.tokenEndpoint), 0);
    });
  });

  describe('file-system and stored-state problems are AGENT_STATE_ERROR, never a raw message', () => {
    it('the state folder is a file', async () => {
      const file = path.join(suite.root, 'a-file');
      fs.writeFileSync(file, 'not a folder');
      for (const dir of [file, path.join(file, 'agents')]) {
        settings.iiotAuth.agentStateDir = dir;
        const { flow, iat } = await loadAgent(sandbox);
        const error = expectError(await outcomeOf(flow.ids, () => H.node(flow.ids.agent).receive({ action: 'onboard' })), 'AGENT_STATE_ERROR', dir);
        assert.match(error.message, /must be a folder/);
        assert.doesNotMatch(error.message, /EEXIST: |ENOTDIR: |mkdir '/, 'no raw Node.js message');
        assert.equal(sandbox.calls('agents.register'), 0, 'the IAT was not spent');
        assertNoLeaks([iat], dir);
        await H.unload();
      }
    });

    const damages: [string, (registration: Record<string, unknown>) => void][] = [
      ['client id is a number', (r) => (r.clientId = 42)],
      ['client id is missing', (r) => delete r.clientId],
      ['client secret is empty', (r) => (r.clientSecret = '')],
      ['client secret is an object', (r) => (r.clientSecret = { a: 1 })],
      ['expiry is text', (r) => (r.clientSecretExpiresAt = 'soon')],
      ['registration URI points elsewhere', (r) => (r.registrationClientUri = 'http://127.0.0.1:1/evil')],
      ['received date is garbage', (r) => (r.receivedAt = 'yesterday')],
    ];
    for (const [name, damage] of damages) {
      it(`a damaged stored registration: ${name}`, async () => {
        const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
        const boarding = JSON.stringify(sandbox.agents.boardingConfiguration(record.id));
        const first = agentFlow(sandbox, boarding);
        await H.load(ALL_MODULES, first.nodes, first.credentials);
        assert.equal((await outcomeOf(first.ids, () => H.node(first.ids.agent).receive({ action: 'onboard' }))).kind, 'output');
        await H.unload();
        const secrets = storedSecrets(settings.iiotAuth.agentStateDir, record.id);
        const file = path.join(settings.iiotAuth.agentStateDir, `${record.id}.json`);
        const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { registrations: Record<string, unknown>[] };
        damage(state.registrations[0]!);
        fs.writeFileSync(file, JSON.stringify(state));
        sandbox.resetCalls();

        const second = agentFlow(sandbox, boarding); // new node ids: no cached token
        await H.load(ALL_MODULES, second.nodes, second.credentials);
        const error = expectError(await outcomeOf(second.ids, () => H.node(second.ids.token).receive({})), 'AGENT_STATE_ERROR', name);
        assert.match(error.message, /damaged.*restore it from a backup/);
        assert.doesNotMatch(error.message, /claim must be|TypeError|ERR_/, 'no raw library message');
        assert.equal(sandbox.calls('agents.token') + sandbox.calls('agents.rotate') + sandbox.calls('agents.register'), 0, 'nothing sent');
        assert.equal(fs.readFileSync(file, 'utf8'), JSON.stringify(state), 'a damaged file is never overwritten');
        assertNoLeaks(secrets, name);
      });
    }

    it('a stored key or secret that jose or node:crypto refuses is AGENT_STATE_ERROR', async () => {
      const base = {
        clientId: 'agent-1',
        clientSecretExpiresAt: 0,
        registrationAccessToken: 'r',
        registrationClientUri: 'https://x/r',
        tokenEndpointAuthMethod: '',
        receivedAt: new Date().toISOString(),
        confirmed: true,
      };
      for (const registration of [
        { ...base, privateKey: '-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----' },
        { ...base, clientId: 42 as unknown as string, clientSecret: 'a-secret-value' },
      ]) {
        await assert.rejects(buildClientAssertion(registration, 'tenant'), (err: Error & { code: string }) => {
          assert.equal(err.code, AgentErrorCode.AGENT_STATE_ERROR);
          assert.doesNotMatch(err.message, /claim must be|DECODER|asn1/i);
          return true;
        });
      }
    });
  });
});
