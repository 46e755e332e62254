import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { PLATFORM_CASES, platformFlow } from '../helpers/platform-flows.js';
import { ALL_MODULES, assertNoLeaks, expectError, loadAgent, outcomeOf, REDIRECTS, securitySuite, storedSecrets, type EvilServer } from './harness.js';

/**
 * Attack: a token, login, registration or agent-token endpoint (or an API)
 * redirects to a server of the attacker's choosing, hoping the request
 * follows with its secret. Each case: the evil server receives nothing, the
 * message ends in exactly one output or error, no secret in what the runtime
 * emitted.
 */
describe('security: redirects never carry credentials', function () {
  this.timeout(60_000);
  const suite = securitySuite('redirects');
  let sandbox: Sandbox;
  let evil: EvilServer;
  before(() => {
    ({ sandbox, evil } = suite);
  });

  const redirectTo = (status: number) => ({ kind: 'status' as const, status, headers: { location: `${evil.url}/steal` } });

  describe("every platform's token or login endpoint redirecting (get token)", () => {
    for (const c of PLATFORM_CASES) {
      for (const status of REDIRECTS) {
        it(`${c.platform}: ${status} to another origin is TOKEN_ENDPOINT_ERROR, nothing re-sent`, async () => {
          const f = platformFlow(c, sandbox);
          await H.load(ALL_MODULES, f.nodes, f.credentials);
          sandbox.fault(c.tokenEndpoint, redirectTo(status));
          const error = expectError(await outcomeOf(f.ids, () => H.node(f.ids.token).receive({})), 'TOKEN_ENDPOINT_ERROR', `${c.platform} ${status}`);
          assert.ok(error.message.includes(`answered ${status}`), error.message);
          assert.ok(error.message.includes(new URL(evil.url).origin), `names the other origin: ${error.message}`);
          assert.match(error.message, /check .*URL/);
          assert.equal(sandbox.calls(c.tokenEndpoint), 1);
          evil.assertUntouched(`${c.platform} ${status}`);
          assertNoLeaks(c.secrets(sandbox), `${c.platform} ${status}`);
        });
      }
    }
  });

  describe('an API answering 307/308 to another origin: the body is not re-sent, the redirect is the output', () => {
    for (const c of PLATFORM_CASES) {
      for (const status of [307, 308]) {
        it(`${c.platform}: POST answered ${status}`, async () => {
          const f = platformFlow(c, sandbox, { request: { method: 'POST' } });
          await H.load(ALL_MODULES, f.nodes, f.credentials);
          sandbox.fault(c.apiEndpoint, redirectTo(status));
          const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ payload: { confidential: 'body-secret-0001' } }));
          assert.equal(outcome.kind, 'output');
          assert.equal(outcome.msg.statusCode, status);
          evil.assertUntouched(`${c.platform} API ${status}`);
          assertNoLeaks(c.secrets(sandbox), `${c.platform} API ${status}`);
        });
      }
    }
  });

  it('a same-origin redirect whose Location holds userinfo: followed without it, and the reported URL never carries it', async () => {
    const c = PLATFORM_CASES.find((p) => p.platform === 'datatrails')!;
    const f = platformFlow(c, sandbox);
    await H.load(ALL_MODULES, f.nodes, f.credentials);
    const withUserinfo = new URL(c.apiPath, sandbox.url);
    withUserinfo.username = 'someone';
    withUserinfo.password = 'location-pass-0001';
    sandbox.fault(c.apiEndpoint, { kind: 'status', status: 302, headers: { location: withUserinfo.href }, times: 1 });
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    assert.equal(outcome.kind, 'output', outcome.error?.message);
    assert.equal(outcome.msg.statusCode, 200);
    assert.equal(outcome.msg.responseUrl, new URL(c.apiPath, sandbox.url).href);
    assert.equal(sandbox.calls(c.apiEndpoint), 2, 'the redirect, then the followed request');
    assertNoLeaks([...c.secrets(sandbox), 'location-pass-0001'], 'Location userinfo');
  });

  describe('Insights Hub agent: registration, key rotation and agent token redirecting', () => {
    for (const status of REDIRECTS) {
      it(`onboarding (IAT): ${status}`, async () => {
        const { flow, iat } = await loadAgent(sandbox);
        sandbox.fault('agents.register', redirectTo(status));
        const error = expectError(
          await outcomeOf(flow.ids, () => H.node(flow.ids.agent).receive({ action: 'onboard' })),
          'TOKEN_ENDPOINT_ERROR',
          `register ${status}`,
        );
        assert.ok(error.message.includes(new URL(evil.url).origin), error.message);
        evil.assertUntouched(`register ${status}`);
        assertNoLeaks([iat], `register ${status}`);
      });

      it(`agent token (client assertion): ${status}`, async () => {
        const { flow, iat, agentId } = await loadAgent(sandbox);
        assert.equal((await outcomeOf(flow.ids, () => H.node(flow.ids.agent).receive({ action: 'onboard' }))).kind, 'output');
        sandbox.fault('agents.token', redirectTo(status));
        const error = expectError(await outcomeOf(flow.ids, () => H.node(flow.ids.token).receive({})), 'TOKEN_ENDPOINT_ERROR', `token ${status}`);
        assert.ok(error.message.includes(new URL(evil.url).origin), error.message);
        evil.assertUntouched(`agent token ${status}`);
        assertNoLeaks([iat, ...storedSecrets(suite.settings.iiotAuth.agentStateDir, agentId)], `agent token ${status}`);
      });

      it(`key rotation (registration access token): ${status}`, async () => {
        const { flow, iat, agentId } = await loadAgent(sandbox);
        assert.equal((await outcomeOf(flow.ids, () => H.node(flow.ids.agent).receive({ action: 'onboard' }))).kind, 'output');
        sandbox.fault('agents.rotate', redirectTo(status));
        const error = expectError(
          await outcomeOf(flow.ids, () => H.node(flow.ids.agent).receive({ action: 'rotate' })),
          'TOKEN_ENDPOINT_ERROR',
          `rotate ${status}`,
        );
        assert.ok(error.message.includes(new URL(evil.url).origin), error.message);
        evil.assertUntouched(`rotate ${status}`);
        assertNoLeaks([iat, ...storedSecrets(suite.settings.iiotAuth.agentStateDir, agentId)], `rotate ${status}`);
      });
    }
  });
});
