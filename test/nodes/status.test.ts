import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { allErrorCodes } from '../../src/platforms/error-codes.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import dataTrailsNode from '../../src/nodes/iiot-datatrails.js';
import insightsHubAppNode from '../../src/nodes/iiot-insights-hub-app.js';
import requestNode from '../../src/nodes/iiot-request.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { PLATFORM_CASES, platformFlow } from '../helpers/platform-flows.js';
import type { NodeMessage } from '../../src/nodes/node-red.js';

/**
 * The status under an action node: a catalog key (the editor translates it,
 * as it does core nodes' node-red:common.status.*), naming the error's code,
 * not a bare "error". Every code has a text in every language.
 */
const root = path.resolve(__dirname, '..', '..', '..');
const KEY = 'node-red-contrib-iiot-auth/iiot-token:common.status.';
const modules = [insightsHubAppNode, dataTrailsNode, tokenNode, requestNode];
const ihApp = PLATFORM_CASES.find((c) => c.platform === 'insights-hub-app')!;

describe('node status', function () {
  this.timeout(30_000);
  let sandbox: Sandbox;

  const env = withSandboxAndRuntime();
  before(() => {
    sandbox = env.sandbox;
  });
  it('every error code has a short status text in English and German', () => {
    for (const lang of ['en-US', 'de']) {
      const catalog = JSON.parse(fs.readFileSync(path.join(root, 'nodes', 'locales', lang, 'iiot-token.json'), 'utf8')) as {
        common: { status: Record<string, string> };
      };
      for (const code of [...allErrorCodes().map((c) => c.code), 'ERROR', 'fetching', 'authenticated']) {
        const text = catalog.common.status[code];
        assert.ok(text, `${lang}: no status text for ${code}`);
        assert.ok(text.length < 20, `${lang}: "${text}" is 20 characters or longer`);
      }
    }
  });

  /** Sends one message to the node and returns the error a Catch node got, and the node's last status. */
  async function failing(flow: ReturnType<typeof platformFlow>, node: string, msg: NodeMessage = { payload: 'go' }) {
    await H.load(modules, flow.nodes, flow.credentials);
    const caught = H.collect(flow.ids.errors, 1);
    H.node(node).receive(msg);
    const [error] = await caught;
    return { code: (error!.error as { code: string }).code, message: (error!.error as { message: string }).message, status: H.statuses(node).at(-1)! };
  }

  const cases: Array<{ name: string; code: string; run: () => Promise<Awaited<ReturnType<typeof failing>>> }> = [
    {
      name: 'wrong client secret',
      code: 'AUTH_REJECTED',
      run: () => {
        const f = platformFlow(ihApp, sandbox, { credentials: ihApp.wrongCredentials(sandbox) });
        return failing(f, f.ids.token);
      },
    },
    {
      name: 'an absolute URL on another origin',
      code: 'FOREIGN_ORIGIN',
      run: () => {
        const f = platformFlow(ihApp, sandbox, { request: { url: 'http://127.0.0.2:9/elsewhere' } });
        return failing(f, f.ids.request);
      },
    },
    {
      name: 'an imported flow: no credentials',
      code: 'CREDENTIALS_MISSING',
      run: () => {
        const dt = PLATFORM_CASES.find((c) => c.platform === 'datatrails')!;
        const f = platformFlow(dt, sandbox, { credentials: {} });
        return failing(f, f.ids.token);
      },
    },
    {
      name: 'a config field missing',
      code: 'CONFIG_INVALID',
      run: () => {
        const f = platformFlow(ihApp, sandbox, { config: { appName: '' } });
        return failing(f, f.ids.token);
      },
    },
    {
      name: 'an unknown msg.method',
      code: 'INPUT_INVALID',
      run: () => {
        const f = platformFlow(ihApp, sandbox, { request: { method: 'use' } });
        return failing(f, f.ids.request, { method: 'BREW' });
      },
    },
  ];
  for (const c of cases) {
    it(`${c.name}: the status names ${c.code}, and so does msg.error.code`, async () => {
      const { code, status } = await c.run();
      assert.equal(code, c.code);
      assert.deepEqual(status, { fill: 'red', shape: 'ring', text: `${KEY}${c.code}` });
    });
  }

  it('missing credentials: the message lists the fields with "and"', async () => {
    const dt = PLATFORM_CASES.find((c) => c.platform === 'datatrails')!;
    const f = platformFlow(dt, sandbox, { credentials: {} });
    const { message } = await failing(f, f.ids.request);
    assert.match(message, /the DataTrails config lacks the client id and client secret: open the config node and fill it in/);
  });

  it('success: the status is the "authenticated" key', async () => {
    const f = platformFlow(ihApp, sandbox);
    await H.load(modules, f.nodes, f.credentials);
    const out = H.collect(f.ids.out, 1);
    H.node(f.ids.token).receive({});
    await out;
    assert.deepEqual(H.statuses(f.ids.token).at(-1), { fill: 'green', shape: 'dot', text: `${KEY}authenticated` });
  });
});
