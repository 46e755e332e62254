import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MindConnectAgent, MindSphereSdk } from '@mindconnect/mindconnect-nodejs';
import agentNode from '../../src/nodes/iiot-agent.js';
import insightsHubAgentNode from '../../src/nodes/iiot-insights-hub-agent.js';
import insightsHubAppNode from '../../src/nodes/iiot-insights-hub-app.js';
import { DEFAULT_LIFETIMES, startSandbox, type BoardingConfiguration, type Sandbox, type SecurityProfile } from '../../src/sandbox/index.js';
import { FlowHarness as H, uid, type FlowNode } from '../helpers/flow.js';
import { TEST_BACKOFF } from '../helpers/settings.js';
import { startRecorder, type RecordedRequest, type Recorder } from './recorder.js';
import { basicAuth, rsa3072Pkcs1, sdkEnvironment, type SdkSandboxEnvironment } from './sdk-run.js';

/**
 * Where the documents are silent, our clients send what the official client
 * sends: both run the same steps (app token, create, boarding configuration
 * and status, onboard, token, rotate, data source configuration get and put,
 * offboard, delete) through a loopback recorder in front of the sandbox, and
 * their requests are compared aspect by aspect, per endpoint. Every
 * difference is either gone (aligned) or listed in KEPT_DIFFERENCES with the
 * reason; a new difference, or a listed one that disappeared, fails the test.
 */

interface Difference {
  /** `METHOD /path` with ids as {id}. */
  endpoint: string;
  aspect: string;
  ours: string;
  sdk: string;
}

interface KeptDifference extends Difference {
  why: string;
}

const AGENTS = '/api/agentmanagement/v3';
const KEPT_DIFFERENCES: KeptDifference[] = [
  // Requests only the SDK makes.
  {
    endpoint: 'GET /token_keys',
    aspect: 'request',
    ours: '(not sent)',
    sdk: 'sent',
    why: "the SDK verifies the app token's signature with the token keys; our clients get the token over TLS straight from the token endpoint and use it as an opaque value (the platform verifies it), so fetching keys buys nothing",
  },
  { endpoint: `GET ${AGENTS}/oauth/token_key`, aspect: 'request', ours: '(not sent)', sdk: 'sent', why: 'the same for the agent token' },
  // The Technical Token Manager.
  {
    endpoint: 'POST /api/technicaltokenmanager/v3/oauth/token',
    aspect: 'body',
    ours: 'json{appName,appVersion,grant_type,hostTenant,userTenant}',
    sdk: 'json{appName,appVersion,hostTenant,userTenant}',
    why: 'the vendor documentation (insights-hub-app-credentials.txt) shows grant_type in its request; a document says, so we keep it',
  },
  // Agent token: the client assertion.
  {
    endpoint: `POST ${AGENTS}/oauth/token`,
    aspect: 'assertion header (RSA_3072)',
    ours: 'alg=RS256 kid',
    sdk: 'alg=RS384',
    why: "the documentation's sample and the C library sign RS256; the platform accepts both (docs/protocols.md); the kid names the registered key, which RFC 7515 allows and helps a server with several keys",
  },
];

/**
 * Not compared: headers the transport adds, and the two that only identify
 * the client program, which we deliberately do not copy: User-Agent (the
 * SDK's names the SDK and its version) and X-Powered-By (the SDK sends
 * "meowz"). Every other header is compared, by name under "other headers".
 */
const TRANSPORT_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'accept-encoding',
  'accept-language',
  'sec-fetch-mode',
  'user-agent',
  'x-powered-by',
]);

/** What is compared of one request. */
function describe_(request: RecordedRequest): Record<string, string> {
  const h = request.headers;
  const scheme = (value: string | undefined): string => (value === undefined ? '(none)' : value.split(' ')[0]!);
  const known = new Set(['content-type', 'accept', 'if-match', 'authorization', 'x-space-auth-key']);
  return {
    'content-type': h['content-type'] ?? '(none)',
    accept: h.accept ?? '(none)',
    'if-match': h['if-match'] ?? '(none)',
    authorization: scheme(h.authorization),
    'x-space-auth-key': scheme(h['x-space-auth-key']),
    'other headers':
      Object.keys(h)
        .filter((name) => !known.has(name) && !TRANSPORT_HEADERS.has(name))
        .sort()
        .join(',') || '(none)',
    body: describeBody(request),
    ...assertionAspects(request),
  };
}

function describeBody(request: RecordedRequest): string {
  if (request.body === '') return '(none)';
  const type = request.headers['content-type'] ?? '';
  if (type.startsWith('application/x-www-form-urlencoded')) return `form{${[...new URLSearchParams(request.body).keys()].sort().join(',')}}`;
  try {
    const parsed = JSON.parse(request.body) as Record<string, unknown>;
    const jwk = (parsed.jwks as { keys?: Record<string, unknown>[] } | undefined)?.keys?.[0];
    const keys = Object.keys(parsed).sort().join(',');
    return jwk ? `json{${keys}} jwk{${Object.keys(jwk).sort().join(',')}}` : `json{${keys}}`;
  } catch {
    return `text(${request.body.length})`;
  }
}

/** For the token request: the client assertion's header and claim names. */
function assertionAspects(request: RecordedRequest): Record<string, string> {
  const assertion = new URLSearchParams(request.body).get('client_assertion');
  if (!assertion) return {};
  const [head, claims] = assertion
    .split('.')
    .slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part!, 'base64url').toString('utf8')) as Record<string, unknown>);
  const alg = `alg=${String(head!.alg)}${head!.kid ? ' kid' : ''}`;
  const profile = String(head!.alg).startsWith('HS') ? 'SHARED_SECRET' : 'RSA_3072';
  return { [`assertion header (${profile})`]: alg, 'assertion claims': Object.keys(claims!).sort().join(',') };
}

function endpointOf(request: RecordedRequest): string {
  const pathname = new URL(request.path, 'http://x').pathname.replace(/\/[0-9a-f]{32}(?=\/|$)/g, '/{id}');
  return `${request.method} ${pathname}`;
}

/** Each endpoint's first request, described. */
function byEndpoint(requests: RecordedRequest[]): Map<string, Record<string, string>> {
  const map = new Map<string, Record<string, string>>();
  for (const request of requests) {
    const endpoint = endpointOf(request);
    const described = describe_(request);
    const seen = map.get(endpoint);
    // The assertion aspects of both profiles are kept side by side.
    map.set(endpoint, seen ? { ...described, ...seen } : described);
  }
  return map;
}

function differences(ours: RecordedRequest[], sdk: RecordedRequest[]): Difference[] {
  const a = byEndpoint(ours);
  const b = byEndpoint(sdk);
  const found: Difference[] = [];
  for (const endpoint of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const x = a.get(endpoint);
    const y = b.get(endpoint);
    if (!x || !y) {
      found.push({ endpoint, aspect: 'request', ours: x ? 'sent' : '(not sent)', sdk: y ? 'sent' : '(not sent)' });
      continue;
    }
    for (const aspect of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
      if (x[aspect] !== y[aspect]) found.push({ endpoint, aspect, ours: x[aspect] ?? '(none)', sdk: y[aspect] ?? '(none)' });
    }
  }
  return found;
}

describe('compatibility: our clients send what the official SDK sends', function () {
  this.timeout(120_000);
  let sandbox: Sandbox;
  let recorder: Recorder;
  let env: SdkSandboxEnvironment;
  let stateDir: string;
  const ours: RecordedRequest[] = [];
  const sdk: RecordedRequest[] = [];
  const modules = [insightsHubAppNode, insightsHubAgentNode, agentNode];

  before(async () => {
    env = sdkEnvironment();
    sandbox = await startSandbox();
    recorder = await startRecorder(sandbox.url);
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-wire-'));
    // The whole iiotAuth object, the harness's short back-off included: the first runtime of the
    // process creates the one token engine with these settings, and later test files rely on them.
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: stateDir } });
  });
  after(async () => {
    await H.stop();
    await recorder.stop();
    await sandbox.stop();
    const hosts = env.remoteHosts();
    env.restore();
    fs.rmSync(stateDir, { recursive: true, force: true });
    assert.deepEqual(
      hosts.filter((host) => host !== '127.0.0.1'),
      [],
      'every connection stayed on loopback',
    );
  });
  afterEach(async () => {
    await H.unload();
    Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES);
  });

  /** The boarding configuration as the recorder serves it (its origin instead of the sandbox's). */
  const throughRecorder = (boarding: BoardingConfiguration): BoardingConfiguration =>
    JSON.parse(JSON.stringify(boarding).split(sandbox.url).join(recorder.url)) as BoardingConfiguration;

  function flow(boarding: BoardingConfiguration, profile: SecurityProfile) {
    const app = sandbox.demo.insightsHubApp;
    const ids = { agentConfig: uid('agc'), app: uid('app'), agent: uid('ag'), out: uid('out'), errors: uid('err') };
    const nodes: FlowNode[] = [
      { id: ids.agentConfig, type: 'iiot-insights-hub-agent', profile, app: ids.app },
      {
        id: ids.app,
        type: 'iiot-insights-hub-app',
        gateway: recorder.url,
        appName: app.appName,
        appVersion: app.appVersion,
        hostTenant: app.hostTenant,
        userTenant: app.userTenant,
      },
      { id: ids.agent, type: 'iiot-agent', insightsHubAgent: ids.agentConfig, action: 'msg', wires: [[ids.out]] },
      { id: ids.out, type: 'helper' },
      { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
      { id: ids.errors, type: 'helper' },
    ];
    const credentials: Record<string, Record<string, string>> = {
      [ids.agentConfig]: { boardingConfig: JSON.stringify(boarding) },
      [ids.app]: { clientId: app.clientId, clientSecret: app.clientSecret },
    };
    return { ids, nodes, credentials };
  }

  async function act(ids: { agent: string; out: string; errors: string }, msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const out = H.collect(ids.out, 1);
    const errors = H.collect(ids.errors, 1);
    H.node(ids.agent).receive(msg);
    const first = await Promise.race([out.then((m) => ({ ok: m[0]! })), errors.then((m) => ({ error: m[0]! }))]);
    if ('error' in first) throw new Error(`${String(msg.action)}: ${JSON.stringify(first.error.error)}`);
    return first.ok;
  }

  for (const profile of ['SHARED_SECRET', 'RSA_3072'] as SecurityProfile[]) {
    it(`${profile}: our nodes run the steps through the recorder`, async () => {
      // A host agent only so that the agent config node exists for the app-side actions.
      const host = sandbox.agents.create({ securityProfile: profile });
      const setup = flow(throughRecorder(sandbox.agents.boardingConfiguration(host.id)), profile);
      await H.load(modules, setup.nodes, setup.credentials);
      const start = recorder.requests.length;
      const created = (
        await act(setup.ids, { action: 'create', payload: { name: `ours ${profile}`, securityProfile: profile, entityId: randomUUID().replace(/-/g, '') } })
      ).payload as { id: string };
      const boarding = (await act(setup.ids, { action: 'boarding-config', agentId: created.id })).payload as BoardingConfiguration;
      assert.equal(boarding.content.baseUrl, recorder.url);
      await act(setup.ids, { action: 'boarding-status', agentId: created.id });
      await H.unload();

      const life = flow(boarding, profile);
      await H.load(modules, life.nodes, life.credentials);
      await act(life.ids, { action: 'onboard' });
      await act(life.ids, { action: 'token' });
      await act(life.ids, { action: 'rotate' });
      const read = await act(life.ids, { action: 'get-data-source-config' });
      await act(life.ids, {
        action: 'put-data-source-config',
        eTag: read.eTag,
        payload: { configurationId: 'wire', dataSources: [{ name: 'press', dataPoints: [{ id: 'dp-1', name: 'pressure', type: 'DOUBLE', unit: 'bar' }] }] },
      });
      await act(life.ids, { action: 'offboard' });
      await act(life.ids, { action: 'delete' });
      ours.push(...recorder.requests.slice(start));
      assert.equal(sandbox.agents.tenant.length > 0, true);
    });

    it(`${profile}: the official SDK runs the same steps through the recorder`, async () => {
      const app = sandbox.demo.insightsHubApp;
      const client = new MindSphereSdk({
        gateway: recorder.url,
        basicAuth: basicAuth(app.clientId, app.clientSecret),
        tenant: app.hostTenant,
        usertenant: app.userTenant,
        appName: app.appName,
        appVersion: app.appVersion,
      });
      const agents = client.GetAgentManagementClient();
      const start = recorder.requests.length;
      const created = await agents.PostAgent({ name: `sdk ${profile}`, securityProfile: profile as never, entityId: randomUUID().replace(/-/g, '') });
      const boarding = await agents.GetBoardingConfiguration(created.id!);
      await agents.GetOnboardingStatus(created.id!);
      // A secret within the SDK's 25 h margin: its first token request rotates, as our rotate action does.
      sandbox.lifetimes.agentClientSecret = 3600;
      const agent = new MindConnectAgent(boarding as never, undefined, env.stateDir);
      if (profile === 'RSA_3072') agent.SetupAgentCertificate(rsa3072Pkcs1());
      await agent.OnBoard();
      sandbox.lifetimes.agentClientSecret = DEFAULT_LIFETIMES.agentClientSecret;
      await agent.GetAgentToken();
      await agent.GetDataSourceConfiguration();
      await agent.PutDataSourceConfiguration({
        configurationId: 'wire',
        dataSources: [{ name: 'press', dataPoints: [{ id: 'dp-1', name: 'pressure', type: 'DOUBLE' as never, unit: 'bar' }] }],
      });
      await agents.OffboardAgent(created.id!);
      const current = await agents.GetAgent(created.id!);
      await agents.DeleteAgent(created.id!, { ifMatch: `${current.eTag}` });
      sdk.push(...recorder.requests.slice(start));
    });
  }

  it('every difference is aligned or kept for a stated reason', () => {
    assert.ok(ours.length >= 20 && sdk.length >= 20, `recorded ${ours.length} and ${sdk.length} requests`);
    const order = (x: Difference, y: Difference): number => `${x.endpoint} ${x.aspect}`.localeCompare(`${y.endpoint} ${y.aspect}`);
    const found = differences(ours, sdk).sort(order);
    const kept = KEPT_DIFFERENCES.map(({ why: _why, ...difference }) => difference).sort(order);
    assert.deepEqual(found, kept, `differences now:\n${found.map((d) => JSON.stringify(d)).join('\n')}`);
    for (const difference of KEPT_DIFFERENCES) assert.ok(difference.why.length > 20, 'each kept difference says why');
  });
});
