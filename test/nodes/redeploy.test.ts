import assert from 'node:assert/strict';
import dataTrailsNode from '../../src/nodes/iiot-datatrails.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { PLATFORM_CASES, platformFlow } from '../helpers/platform-flows.js';
import { waitFor } from '../helpers/wait.js';

const dataTrails = PLATFORM_CASES.find((c) => c.platform === 'datatrails')!;

/**
 * A redeploy while a request of the old flow is still running: its config
 * node closes, its answer is a 401 (the token ran out meanwhile), and its
 * retry would need a token through the closed client. That must fail the old
 * message only, never the shared token state the new, unchanged config node
 * (same id, same settings) goes on with.
 */
describe('a redeploy under a running request', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await startSandbox();
    // A long back-off: a failure recorded in the shared state would still hold when the next message comes.
    await H.start({ iiotAuth: { backoffInitialMs: 20_000, backoffMaxMs: 40_000 } });
  });
  after(async () => {
    await H.stop();
    await sandbox.stop();
  });
  afterEach(async () => {
    await H.unload();
    sandbox.clearFaults();
  });

  it("the old flow's 401 after its config node closed leaves no CLOSED failure for the new flow", async () => {
    const f = platformFlow(dataTrails, sandbox);
    await H.load([dataTrailsNode, tokenNode, requestNode], f.nodes, f.credentials);
    const first = H.collect(f.ids.out, 1);
    H.node(f.ids.request).receive({ payload: 'warm-up' });
    assert.equal((await first)[0].statusCode, 200);

    // A slow answer: the old request is at the server while its token expires and the flow is redeployed.
    const before = sandbox.calls('dataTrails.assets');
    sandbox.fault('dataTrails.assets', { kind: 'delay', ms: 800, times: 1 });
    H.node(f.ids.request).receive({ payload: 'old' });
    await waitFor(() => sandbox.calls('dataTrails.assets') > before, { what: 'the old request to reach the server' });
    sandbox.revokeTokens();
    const tokensBefore = sandbox.calls('dataTrails.token');
    await H.redeploy(f.nodes, 'full', f.credentials); // unchanged: same ids, same settings

    const after = H.collect(f.ids.out, 1);
    const failed = H.collect(f.ids.errors, 1, 5_000).catch(() => []);
    H.node(f.ids.request).receive({ payload: 'new' });
    const answer = await Promise.race([after, failed.then((errs) => Promise.reject(new Error(`the new flow failed: ${JSON.stringify(errs)}`)))]);
    assert.equal(answer[0].statusCode, 200);
    assert.equal(answer[0].payload !== 'old', true);
    assert.equal(sandbox.calls('dataTrails.token') - tokensBefore, 1, 'one new token, fetched by the new config node');
  });
});
