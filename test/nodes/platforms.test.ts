import assert from 'node:assert/strict';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { CONFIG_NODE_MODULES, PLATFORM_CASES, platformFlow } from '../helpers/platform-flows.js';
import { waitFor } from '../helpers/wait.js';

const modules = [...CONFIG_NODE_MODULES, tokenNode, requestNode];

/** What every platform must do the same way, through the nodes, against the sandbox. */
describe('every platform through get token and authenticated request', function () {
  this.timeout(60_000);
  const env = withSandboxAndRuntime();
  let sandbox: Sandbox;
  before(() => {
    sandbox = env.sandbox;
  });

  for (const c of PLATFORM_CASES) {
    describe(c.platform, () => {
      const original = { lifetime: 0 };
      beforeEach(() => {
        original.lifetime = sandbox.lifetimes[c.lifetime];
      });
      afterEach(() => {
        sandbox.lifetimes[c.lifetime] = original.lifetime;
      });

      async function load(options: Parameters<typeof platformFlow>[2] = {}) {
        const f = platformFlow(c, sandbox, options);
        await H.load(modules, f.nodes, f.credentials);
        return f;
      }

      it('gets a token and calls the API with it; no secret in anything the runtime emitted', async () => {
        const f = await load();
        const out = H.collect(f.ids.out, 2);
        H.node(f.ids.token).receive({});
        H.node(f.ids.request).receive({});
        const msgs = await out;
        const tokenMsg = msgs.find((m) => m.token)!;
        const apiMsg = msgs.find((m) => 'statusCode' in m)!;
        const token = tokenMsg.token as { platform: string; type: string; headers: Record<string, string> };
        assert.equal(token.platform, c.platform);
        assert.equal(token.type, c.platform === 'mbp' ? 'session' : 'bearer');
        assert.equal(apiMsg.statusCode, 200, JSON.stringify(apiMsg.payload));
        // The headers get token puts on msg.headers work with any HTTP client.
        const direct = await fetch(`${c.baseUrl(sandbox)}${c.apiPath}`, {
          headers: tokenMsg.headers as Record<string, string>,
        });
        assert.equal(direct.status, 200);
        assert.equal(sandbox.calls(c.tokenEndpoint), 1);
        assert.deepEqual(H.leaks(c.secrets(sandbox)), []);
      });

      it('1,000 concurrent messages with a cold cache: one token request', async () => {
        const f = await load();
        const out = H.collect(f.ids.out, 1000, 60_000);
        for (let i = 0; i < 500; i++) {
          H.node(f.ids.token).receive({ i });
          H.node(f.ids.request).receive({ i });
        }
        const msgs = await out;
        assert.equal(sandbox.calls(c.tokenEndpoint), 1);
        assert.ok(msgs.filter((m) => 'statusCode' in m).every((m) => m.statusCode === 200));
      });

      it('renews across a short lifetime with no request failing', async () => {
        sandbox.lifetimes[c.lifetime] = 2;
        const f = await load();
        let sent = 0;
        // A request every 100 ms until one is sent with the third token: two renewals of a 2 s token.
        const request = async () => {
          const tokens = sandbox.calls(c.tokenEndpoint);
          const out = H.collect(f.ids.out, 1);
          H.node(f.ids.request).receive({});
          assert.equal((await out)[0]!.statusCode, 200);
          sent += 1;
          return tokens >= 3;
        };
        await waitFor(request, { timeoutMs: 15_000, intervalMs: 100, what: () => `a third token: ${sandbox.calls(c.tokenEndpoint)} so far` });
        assert.ok(sent > 10, `${sent} requests: at least one every 300 ms across both renewals`);
      });

      it('recovers from a revoked token or session: one new token, the call retried once', async () => {
        const f = await load();
        const first = H.collect(f.ids.out, 1);
        H.node(f.ids.request).receive({});
        await first;
        sandbox.revokeTokens();
        const second = H.collect(f.ids.out, 1);
        H.node(f.ids.request).receive({});
        assert.equal((await second)[0]!.statusCode, 200);
        assert.equal(sandbox.calls(c.tokenEndpoint), 2);
        assert.equal(sandbox.calls(c.apiEndpoint), 3);
      });

      it('wrong credentials: a clear error, red status, no secret emitted', async () => {
        const wrong = c.wrongCredentials(sandbox);
        const f = await load({ credentials: wrong });
        const errors = H.collect(f.ids.errors, 1);
        H.node(f.ids.token).receive({});
        const error = (await errors)[0]!.error as { code: string; message: string };
        assert.equal(error.code, 'AUTH_REJECTED', error.message);
        assert.equal(H.statuses(f.ids.token).at(-1)!.fill, 'red');
        assert.deepEqual(H.leaks([...c.secrets(sandbox), ...Object.values(wrong).filter((v) => v.startsWith('wrong'))]), []);
      });

      it('does not repeat a token request answered with 429', async () => {
        const f = await load();
        sandbox.fault(c.tokenEndpoint, { kind: 'status', status: 429, headers: { 'retry-after': '0' }, times: 1 });
        const errors = H.collect(f.ids.errors, 1);
        H.node(f.ids.token).receive({});
        const error = (await errors)[0]!.error as { code: string; message: string };
        assert.equal(error.code, 'TOKEN_ENDPOINT_ERROR');
        assert.match(error.message, /busy \(429\)/);
        assert.equal(sandbox.calls(c.tokenEndpoint), 1, 'a token POST is not blindly repeated');
      });
    });
  }
});
