import assert from 'node:assert/strict';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import type { HealthEntry } from '../../src/health/model.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { outcomeOf } from '../helpers/outcome.js';
import { CONFIG_NODE_MODULES, PLATFORM_CASES, platformFlow } from '../helpers/platform-flows.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';

const modules = [...CONFIG_NODE_MODULES, tokenNode, requestNode];
const c = PLATFORM_CASES.find((p) => p.platform === 'oauth2')!;

describe('health: the admin routes (smoke)', function () {
  this.timeout(30_000);
  const env = withSandboxAndRuntime();

  it('GET iiot-auth/health lists the config node; a message makes its token show', async () => {
    const f = platformFlow(c, env.sandbox);
    await H.load(modules, f.nodes, f.credentials);
    const before = await H.request().get('/iiot-auth/health');
    assert.equal(before.status, 200);
    const entry = (before.body.credentials as HealthEntry[]).find((e) => e.id === f.ids.config)!;
    assert.equal(entry.state, 'ok');
    await outcomeOf(f.ids, () => H.node(f.ids.request).receive({}));
    const after = await H.request().get('/iiot-auth/health');
    const now = (after.body.credentials as HealthEntry[]).find((e) => e.id === f.ids.config)!;
    assert.equal(now.state, 'ok', JSON.stringify(now));
    assert.ok(now.tokenExpiresAt);
    assert.equal(now.counts.tokenRequests, 1);
    assert.equal(now.counts.apiRequests, 1);
    const metrics = await H.request().get('/iiot-auth/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /iiot_auth_token_requests_total\{platform="oauth2",config="[^"]+",name=""\} 1/);
  });
});
