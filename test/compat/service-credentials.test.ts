import assert from 'node:assert/strict';
import { CredentialAuth } from '@mindconnect/mindconnect-nodejs';
import tokenNode from '../../src/nodes/iiot-token.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H, uid } from '../helpers/flow.js';
import { outcomeOf } from '../helpers/outcome.js';
import { CONFIG_NODE_MODULES } from '../helpers/platform-flows.js';
import { type RecordedRequest, type Recorder, startRecorder } from './recorder.js';
import { basicAuth, type SdkSandboxEnvironment, sdkEnvironment } from './sdk-run.js';

/**
 * Insights Hub service credentials: the official SDK's `CredentialAuth`
 * (api/credential-auth.js) and our `iiot-insights-hub-service` config node
 * ask the same token endpoint through a loopback recorder in front of the
 * sandbox, and their token requests are compared: path, method, content
 * type, the HTTP Basic value byte for byte, the form. The SDK also checks
 * the sandbox's token with its `/token_keys`, so the imitation is checked
 * against the SDK as well. Differences kept are listed with the reason.
 */
const TOKEN = 'POST /oauth/token';
const KEPT = {
  accept: { ours: 'application/json', sdk: '*/*', why: 'we ask for the JSON a token answer is (RFC 6749 5.1); the SDK sends */* with every request' },
  tokenKeys: {
    why: "the SDK verifies the token's signature with the piam's token keys; we use the token as an opaque value that the gateway verifies, as for app tokens",
  },
};

describe('compatibility: Insights Hub service credentials as the SDK sends them (CredentialAuth)', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  let recorder: Recorder;
  let env: SdkSandboxEnvironment;
  before(async () => {
    env = sdkEnvironment();
    sandbox = await startSandbox();
    recorder = await startRecorder(sandbox.url);
    await H.start();
  });
  after(async () => {
    await H.stop();
    await recorder.stop();
    await sandbox.stop();
    const hosts = env.remoteHosts();
    env.restore();
    assert.deepEqual(
      hosts.filter((host) => host !== '127.0.0.1'),
      [],
      'every connection stayed on loopback',
    );
  });

  const requestsSince = (start: number): RecordedRequest[] => recorder.requests.slice(start);
  const endpoint = (r: RecordedRequest) => `${r.method} ${new URL(r.path, 'http://x').pathname}`;

  async function ours(): Promise<{ requests: RecordedRequest[]; token: string }> {
    const demo = sandbox.demo.insightsHubService;
    const ids = { config: uid('svc'), token: uid('tok'), request: uid('req'), out: uid('out'), errors: uid('err') };
    await H.load(
      [...CONFIG_NODE_MODULES, tokenNode],
      [
        { id: ids.config, type: 'iiot-insights-hub-service', gateway: recorder.url, tenant: demo.tenant },
        { id: ids.token, type: 'iiot-token', platform: 'insights-hub-service', insightsHubService: ids.config, wires: [[ids.out]] },
        { id: ids.out, type: 'helper' },
        { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
        { id: ids.errors, type: 'helper' },
      ],
      { [ids.config]: { clientId: demo.clientId, clientSecret: demo.clientSecret } },
    );
    const start = recorder.requests.length;
    const outcome = await outcomeOf(ids, () => H.node(ids.token).receive({}));
    await H.unload();
    assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
    return { requests: requestsSince(start), token: (outcome.msg.token as { value: string }).value };
  }

  async function sdk(): Promise<{ requests: RecordedRequest[]; token: string }> {
    const demo = sandbox.demo.insightsHubService;
    const start = recorder.requests.length;
    const auth = new CredentialAuth(recorder.url, basicAuth(demo.clientId, demo.clientSecret), demo.tenant);
    // GetToken asks the token endpoint, then checks the token with /token_keys (AuthBase.ValidateToken).
    const token = await auth.GetToken();
    return { requests: requestsSince(start), token };
  }

  it('both get a token the gateway takes; the SDK verifies the sandbox token with its /token_keys', async () => {
    const a = await ours();
    const b = await sdk();
    for (const token of [a.token, b.token]) {
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
      assert.equal(claims.client_id, sandbox.demo.insightsHubService.clientId);
      assert.equal(claims.ten, sandbox.demo.insightsHubService.tenant);
    }
    assert.deepEqual(a.requests.map(endpoint), [TOKEN]);
    assert.deepEqual(b.requests.map(endpoint), [TOKEN, 'GET /token_keys'], KEPT.tokenKeys.why);
    const [x, y] = [a.requests[0]!, b.requests[0]!];
    assert.equal(x.headers.authorization, y.headers.authorization, 'HTTP Basic of the plain id:secret, byte for byte');
    assert.equal(x.headers['content-type'], y.headers['content-type']);
    assert.deepEqual([...new URLSearchParams(x.body)], [...new URLSearchParams(y.body)]);
    assert.deepEqual([x.headers.accept, y.headers.accept], [KEPT.accept.ours, KEPT.accept.sdk], KEPT.accept.why);
    const extra = (r: RecordedRequest) =>
      Object.keys(r.headers).filter(
        (h) =>
          !['host', 'connection', 'content-length', 'accept-encoding', 'user-agent', 'x-powered-by', 'accept', 'authorization', 'content-type'].includes(h),
      );
    assert.deepEqual(extra(x), []);
    assert.deepEqual(extra(y), []);
  });

  it('the token endpoint: the gateway host with "gateway" replaced by <tenant>.piam (the SDK: getPiamUrl in api/utils.js)', async () => {
    const { tokenUrlOf } = await import('../../src/platforms/insights-hub-service.js');
    assert.equal(tokenUrlOf({ gateway: 'https://gateway.eu1.mindsphere.io', tenant: 'acme' }), 'https://acme.piam.eu1.mindsphere.io/oauth/token');
    assert.equal(tokenUrlOf({ gateway: 'https://gateway.cn1.mindsphere-in.cn', tenant: 'acme' }), 'https://acme.piam.cn1.mindsphere-in.cn/oauth/token');
    // Without the gateway label (the sandbox), the SDK's replace() leaves the host, and so do we.
    assert.equal(tokenUrlOf({ gateway: 'http://127.0.0.1:1881', tenant: 'acme' }), 'http://127.0.0.1:1881/oauth/token');
  });
});
