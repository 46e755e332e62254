import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MindConnectAgent } from '@mindconnect/mindconnect-nodejs';
import agentNode from '../../src/nodes/iiot-agent.js';
import insightsHubAgentNode from '../../src/nodes/iiot-insights-hub-agent.js';
import tokenNode from '../../src/nodes/iiot-token.js';
import { DEFAULT_LIFETIMES, startSandbox, type Sandbox, type SecurityProfile } from '../../src/sandbox/index.js';
import { rsa3072Pkcs1, sdkEnvironment, type SdkSandboxEnvironment } from '../compat/sdk-run.js';
import { FlowHarness as H, uid, type FlowNode } from '../helpers/flow.js';
import { TEST_BACKOFF } from '../helpers/settings.js';
import { RedisServer } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';

const modules = [insightsHubAgentNode, agentNode, tokenNode];

interface SdkState {
  content: { iat: string; clientId: string };
  response: { client_secret?: string; registration_access_token: string; client_secret_expires_at: number; jwks?: unknown };
  recovery?: unknown[];
}

/**
 * Issue 13: an agent onboarded by the official Siemens SDK (unmodified,
 * against the sandbox) is adopted by the agent config node from the SDK's
 * state file, in a real Node-RED runtime: tokens, rotation, the data source
 * configuration the SDK wrote, and never a second onboarding.
 */
describe('Insights Hub agent: adopting an agent from the SDK state file', function () {
  this.timeout(120_000);
  let sandbox: Sandbox;
  let stateDir: string;
  let env: SdkSandboxEnvironment;

  before(async () => {
    env = sdkEnvironment();
    sandbox = await startSandbox();
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-agent-adopt-'));
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentStateDir: stateDir, agentLockStaleMs: 2000 } });
  });
  after(async () => {
    await H.stop();
    await sandbox.stop();
    env.restore();
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await H.unload();
    Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES);
    sandbox.resetCalls();
  });

  /** The SDK onboards a new agent, takes a token, writes a data source configuration; its state file's text. */
  async function sdkOnboarded(profile: SecurityProfile, key?: string, options: { dataSource?: boolean } = {}) {
    const record = sandbox.agents.create({ securityProfile: profile });
    const boarding = sandbox.agents.boardingConfiguration(record.id);
    const agent = sdkAgent(boarding, key);
    assert.equal(await agent.OnBoard(), 'ONBOARDED');
    await agent.GetAgentToken();
    if (options.dataSource !== false) {
      await agent.PutDataSourceConfiguration({
        configurationId: `sdk-${record.id}`,
        dataSources: [{ name: 'press', dataPoints: [{ id: 'dp-pressure', name: 'pressure', type: 'DOUBLE' as never, unit: 'bar' }] }],
      });
    }
    return { id: record.id, boarding, agent, file: () => fs.readFileSync(path.join(env.stateDir, `${record.id}.json`), 'utf8') };
  }

  function sdkAgent(boarding: unknown, key?: string): MindConnectAgent {
    const agent = new MindConnectAgent(boarding as never, undefined, env.stateDir);
    if (key) agent.SetupAgentCertificate(key);
    return agent;
  }

  function adoptFlow(stateFile: string, options: { profile?: SecurityProfile; privateKey?: string } = {}) {
    const ids = { agentConfig: uid('agc'), agent: uid('ag'), token: uid('tok'), out: uid('out'), errors: uid('err') };
    const nodes: FlowNode[] = [
      { id: ids.agentConfig, type: 'iiot-insights-hub-agent', profile: options.profile ?? 'SHARED_SECRET' },
      { id: ids.agent, type: 'iiot-agent', insightsHubAgent: ids.agentConfig, action: 'msg', wires: [[ids.out]] },
      { id: ids.token, type: 'iiot-token', platform: 'insights-hub-agent', insightsHubAgent: ids.agentConfig, wires: [[ids.out]] },
      { id: ids.out, type: 'helper' },
      { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
      { id: ids.errors, type: 'helper' },
    ];
    const credentials = { [ids.agentConfig]: { boardingConfig: stateFile, ...(options.privateKey ? { privateKey: options.privateKey } : {}) } };
    return { ids, nodes, credentials };
  }

  function stored(id: string) {
    return JSON.parse(fs.readFileSync(path.join(stateDir, `${id}.json`), 'utf8')) as {
      adoptedAt?: string;
      lastRotationAt?: string;
      registrations: Array<{ clientSecret?: string; registrationAccessToken: string; privateKey?: string }>;
    };
  }

  function secretsOf(text: string, extra: string[] = []): string[] {
    const state = JSON.parse(text) as SdkState;
    return [state.content.iat, state.response.registration_access_token, state.response.client_secret ?? '', ...extra].filter(Boolean);
  }

  for (const profile of ['SHARED_SECRET', 'RSA_3072'] as SecurityProfile[]) {
    it(`${profile}: adopts the SDK's registration, takes tokens, rotates, reads the SDK's data source configuration, never onboards again; the SDK's copy stops working`, async () => {
      const key = profile === 'RSA_3072' ? rsa3072Pkcs1() : undefined;
      const sdk = await sdkOnboarded(profile, key);
      const file = sdk.file();
      const registersBefore = sandbox.calls('agents.register');
      assert.equal(registersBefore, 1, 'the SDK onboarded once');

      const f = adoptFlow(file, { profile, ...(key ? { privateKey: key } : {}) });
      await H.load(modules, f.nodes, f.credentials);
      const adopted = await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
      const payload = adopted.payload as { onboarded: boolean; alreadyOnboarded: boolean; lastRotationAt?: string; adoption?: { from: string; note: string } };
      assert.equal(payload.onboarded, true);
      assert.equal(payload.alreadyOnboarded, false);
      assert.equal(payload.adoption?.from, 'sdk-state-file');
      assert.match(payload.adoption!.note, /rotated the credentials since, so the SDK's copy .* no longer works/);
      assert.ok(payload.lastRotationAt, 'rotated at adoption');
      assert.equal(sandbox.calls('agents.rotate'), 1);

      const tokenMsg = await H.answer(f.ids.token, f.ids.out, {});
      assert.equal((tokenMsg.token as { platform: string }).platform, 'insights-hub-agent');
      const dsc = await H.answer(f.ids.agent, f.ids.out, { action: 'get-data-source-config' });
      assert.equal((dsc.payload as { configurationId: string }).configurationId, `sdk-${sdk.id}`, 'the configuration the SDK wrote');
      const rotated = await H.answer(f.ids.agent, f.ids.out, { action: 'rotate' });
      assert.ok((rotated.payload as { lastRotationAt: string }).lastRotationAt);
      await H.answer(f.ids.agent, f.ids.out, { action: 'token' });
      assert.equal(
        sandbox.agents.status(sdk.id).activeRegistration!.number,
        3,
        "the SDK's registration (1), the rotation at adoption (2) and the rotate action (3), the last in use",
      );
      assert.equal(sandbox.calls('agents.register'), registersBefore, 'never onboarded again');

      const state = stored(sdk.id);
      assert.ok(state.adoptedAt);
      assert.equal(fs.statSync(path.join(stateDir, `${sdk.id}.json`)).mode & 0o777, 0o600, 'stored as any registration: owner only');
      if (profile === 'RSA_3072')
        assert.notEqual(
          state.registrations[0]!.privateKey,
          createPrivateKey(key!).export({ type: 'pkcs8', format: 'pem' }).toString(),
          'rotated to a key of its own',
        );
      // One agent, one owner: the SDK, restarted from its state folder, no longer gets a token.
      await assert.rejects(sdkAgent(sdk.boarding, key).GetAgentToken(), /Unauthorized/);

      // A redeploy with the same pasted file uses the store: no second adoption, no onboarding.
      await H.unload();
      sandbox.resetCalls();
      await H.load(modules, f.nodes, f.credentials);
      const again = await H.answer(f.ids.agent, f.ids.out, { action: 'onboard' });
      assert.equal((again.payload as { alreadyOnboarded: boolean }).alreadyOnboarded, true);
      await H.answer(f.ids.token, f.ids.out, {});
      assert.equal(sandbox.calls('agents.register'), 0);
      assert.equal(sandbox.calls('agents.rotate'), 0);

      const secrets = secretsOf(file, [
        ...state.registrations.flatMap((r) => [r.clientSecret ?? '', r.registrationAccessToken]),
        ...(key ? [key.split('\n')[1]!] : []),
      ]);
      assert.deepEqual(H.leaks(secrets), []);
    });
  }

  it("RSA_3072: the SDK's key as PKCS#8 is taken as well; a file that shows the registered public key (jwks) is checked against it", async () => {
    const key = rsa3072Pkcs1();
    const sdk = await sdkOnboarded('RSA_3072', key, { dataSource: false });
    const state = JSON.parse(sdk.file()) as SdkState;
    // As the platform would echo it (RFC 7591): the SDK saves whatever the registration answer holds.
    const jwk = createPublicKey(key).export({ format: 'jwk' });
    state.response.jwks = { keys: [{ kty: 'RSA', n: jwk.n, e: jwk.e, kid: 'mindconnect-key-1' }] };
    const pkcs8 = createPrivateKey(key).export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.match(pkcs8, /BEGIN PRIVATE KEY/);

    const wrong = adoptFlow(JSON.stringify(state), { profile: 'RSA_3072', privateKey: rsa3072Pkcs1() });
    await H.load(modules, wrong.nodes, wrong.credentials);
    const mismatch = await H.failure(wrong.ids.agent, wrong.ids.errors, { action: 'onboard' });
    assert.equal(mismatch.code, 'CONFIG_INVALID');
    assert.match(mismatch.message, /private key in the key field does not match the public key registered in the SDK state file/);
    await H.unload();

    const f = adoptFlow(JSON.stringify(state), { profile: 'RSA_3072', privateKey: pkcs8 });
    await H.load(modules, f.nodes, f.credentials);
    const tokenMsg = await H.answer(f.ids.agent, f.ids.out, { action: 'token' });
    assert.ok((tokenMsg.token as { value: string }).value);
    assert.equal(sandbox.calls('agents.register'), 1, "only the SDK's onboarding");
    assert.ok(stored(sdk.id).adoptedAt);
    assert.deepEqual(H.leaks([...secretsOf(sdk.file()), pkcs8.split('\n')[1]!]), []);
  });

  it('RSA_3072 with a key the SDK did not use, and no public key in the file: the first token request fails with an error that says so; nothing is stored', async () => {
    const sdk = await sdkOnboarded('RSA_3072', rsa3072Pkcs1(), { dataSource: false });
    const other = rsa3072Pkcs1();
    const f = adoptFlow(sdk.file(), { profile: 'RSA_3072', privateKey: other });
    await H.load(modules, f.nodes, f.credentials);
    const refused = await H.failure(f.ids.agent, f.ids.errors, { action: 'onboard' });
    assert.equal(refused.code, 'AUTH_REJECTED');
    assert.match(refused.message, /either the private key in the key field is not the one the SDK used/);
    assert.equal(sandbox.calls('agents.register'), 1);
    assert.equal(sandbox.calls('agents.rotate'), 0, 'a refused registration is not rotated');
    assert.equal(fs.existsSync(path.join(stateDir, `${sdk.id}.json`)), false, 'nothing stored');
    assert.deepEqual(H.leaks([...secretsOf(sdk.file()), other.split('\n')[1]!]), []);
  });

  /** The SDK onboards a new agent and takes no token yet: its state file's text then. */
  async function sdkJustOnboarded(profile: SecurityProfile = 'SHARED_SECRET') {
    const record = sandbox.agents.create({ securityProfile: profile });
    const boarding = sandbox.agents.boardingConfiguration(record.id);
    assert.equal(await sdkAgent(boarding).OnBoard(), 'ONBOARDED');
    return { id: record.id, boarding, file: () => fs.readFileSync(path.join(env.stateDir, `${record.id}.json`), 'utf8') };
  }

  it('a stale file (the SDK rotated again after it was copied) is refused with an error that says which copy is newer', async () => {
    sandbox.lifetimes.agentClientSecret = 3600; // within the SDK's 25 h margin: its next token rotates
    const sdk = await sdkJustOnboarded();
    const copied = sdk.file();
    sandbox.lifetimes.agentClientSecret = DEFAULT_LIFETIMES.agentClientSecret;
    // The SDK's life goes on after the copy: it rotates and uses its new registration.
    await sdkAgent(sdk.boarding).GetAgentToken();
    assert.equal(sandbox.calls('agents.rotate'), 1);

    const f = adoptFlow(copied);
    await H.load(modules, f.nodes, f.credentials);
    const refused = await H.failure(f.ids.agent, f.ids.errors, { action: 'token' });
    assert.equal(refused.code, 'AUTH_REJECTED');
    assert.match(
      refused.message,
      /rotated the credentials again after this file was copied, so its own current \.mc\/.*\.json is newer: stop it, copy that file/,
    );
    assert.equal(sandbox.calls('agents.register'), 1);
    await H.unload();

    // The SDK's current file is adopted.
    const fresh = adoptFlow(sdk.file());
    await H.load(modules, fresh.nodes, fresh.credentials);
    await H.answer(fresh.ids.agent, fresh.ids.out, { action: 'token' });
    assert.equal(sandbox.calls('agents.register'), 1);
    assert.deepEqual(H.leaks([...secretsOf(copied), ...secretsOf(sdk.file())]), []);
  });

  it('a client secret past its expiry is revived through the registration access token', async () => {
    sandbox.lifetimes.agentClientSecret = 1;
    const sdk = await sdkJustOnboarded();
    sandbox.lifetimes.agentClientSecret = DEFAULT_LIFETIMES.agentClientSecret;
    const file = sdk.file();
    const expiresAt = (JSON.parse(file) as SdkState).response.client_secret_expires_at * 1000;
    // Both the node and the sandbox hold a secret expired once expiresAt <= now: the node judges by its own clock.
    await waitFor(() => Date.now() >= expiresAt, { timeoutMs: 5000, what: `the client secret to expire at ${new Date(expiresAt).toISOString()}` });
    const f = adoptFlow(file);
    await H.load(modules, f.nodes, f.credentials);
    sandbox.resetCalls();
    const tokenMsg = await H.answer(f.ids.agent, f.ids.out, { action: 'token' });
    assert.ok((tokenMsg.token as { value: string }).value);
    assert.equal(sandbox.calls('agents.rotate'), 1, 'revived by a rotation');
    assert.equal(sandbox.calls('agents.register'), 0);
    assert.deepEqual(H.leaks(secretsOf(file)), []);
  });

  it('adoption is refused when the store already holds a newer registration of the agent', async () => {
    const sdk = await sdkOnboarded('SHARED_SECRET', undefined, { dataSource: false });
    const old = sdk.file();
    // The agent was offboarded and this Node-RED onboarded it afresh: its registration is the newer one.
    sandbox.agents.offboard(sdk.id);
    const boarding = sandbox.agents.boardingConfiguration(sdk.id);
    sandbox.lifetimes.agentClientSecret += 1; // a later client_secret_expires_at (whole seconds) without waiting one
    const own = adoptFlow(JSON.stringify(boarding));
    await H.load(modules, own.nodes, own.credentials);
    await H.answer(own.ids.agent, own.ids.out, { action: 'onboard' });
    await H.unload();
    const before = fs.readFileSync(path.join(stateDir, `${sdk.id}.json`), 'utf8');

    const f = adoptFlow(old);
    await H.load(modules, f.nodes, f.credentials);
    const refused = await H.failure(f.ids.agent, f.ids.errors, { action: 'onboard' });
    assert.equal(refused.code, 'AGENT_STATE_ERROR');
    assert.match(refused.message, /adoption refused: .* already holds a newer registration of agent .* than the SDK state file/);
    assert.equal(fs.readFileSync(path.join(stateDir, `${sdk.id}.json`), 'utf8'), before, 'the store is untouched');
    assert.deepEqual(H.leaks([...secretsOf(old), boarding.content.iat]), []);
  });

  it('a malformed state file or one of the wrong shape is a clear config error that quotes nothing', async () => {
    const sdk = await sdkOnboarded('SHARED_SECRET', undefined, { dataSource: false });
    const good = JSON.parse(sdk.file()) as SdkState & Record<string, unknown>;
    const cases: [unknown, RegExp][] = [
      [{ ...good, response: 'x' }, /SDK state file has no "response"/],
      [{ ...good, response: { ...good.response, registration_access_token: undefined } }, /SDK state file lacks "response"\.registration_access_token/],
      [{ ...good, response: { ...good.response, client_id: 'someone-else' } }, /client_id that is not content\.clientId/],
      [{ ...good, response: { ...good.response, client_secret: undefined } }, /lacks "response"\.client_secret/],
      [
        { ...good, response: { ...good.response, registration_client_uri: 'https://elsewhere.example/register/x' } },
        /registration_client_uri on another origin/,
      ],
      [{ ...good, recovery: {} }, /"recovery" that is not a list/],
      [[good], /has no "content"/],
    ];
    for (const [value, expected] of cases) {
      const f = adoptFlow(JSON.stringify(value));
      await H.load(modules, f.nodes, f.credentials);
      const failed = await H.failure(f.ids.agent, f.ids.errors, { action: 'onboard' });
      assert.equal(failed.code, 'CONFIG_INVALID', failed.message);
      assert.match(failed.message, expected);
      await H.unload();
    }
    const rsaWithoutKey = adoptFlow(JSON.stringify({ ...good, content: { ...good.content, clientCredentialProfile: ['RSA_3072'] } }), { profile: 'RSA_3072' });
    await H.load(modules, rsaWithoutKey.nodes, rsaWithoutKey.credentials);
    assert.match((await H.failure(rsaWithoutKey.ids.agent, rsaWithoutKey.ids.errors, { action: 'onboard' })).message, /needs the private key the SDK used/);
    assert.equal(sandbox.calls('agents.register'), 1, "only the SDK's");
    assert.deepEqual(H.leaks(secretsOf(sdk.file())), []);
  });
});

describe('Insights Hub agent: adopting an agent from the SDK state file into Redis', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  let env: SdkSandboxEnvironment;
  let redis: RedisServer;
  const keyPrefix = `adopt-${process.pid}:`;

  before(async () => {
    env = sdkEnvironment();
    sandbox = await startSandbox();
    redis = await RedisServer.start();
    await H.start({ iiotAuth: { ...TEST_BACKOFF, agentLockStaleMs: 2000, agentStore: { redis: { url: redis.url, keyPrefix } } } });
  });
  after(async () => {
    await H.unload();
    await H.stop();
    await redis?.stop();
    await sandbox?.stop();
    env?.restore();
  });

  it('the adopted registration goes to the shared store, as any registration', async () => {
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const boarding = sandbox.agents.boardingConfiguration(record.id);
    const sdk = new MindConnectAgent(boarding as never, undefined, env.stateDir);
    await sdk.OnBoard();
    const file = fs.readFileSync(path.join(env.stateDir, `${record.id}.json`), 'utf8');
    const ids = { config: uid('agc'), agent: uid('ag'), out: uid('out') };
    await H.load(
      modules,
      [
        { id: ids.config, type: 'iiot-insights-hub-agent', profile: 'SHARED_SECRET' },
        { id: ids.agent, type: 'iiot-agent', insightsHubAgent: ids.config, action: 'token', wires: [[ids.out]] },
        { id: ids.out, type: 'helper' },
      ],
      { [ids.config]: { boardingConfig: file } },
    );
    const result = H.collect(ids.out, 1);
    H.node(ids.agent).receive({});
    assert.ok(((await result)[0]!.token as { value: string }).value);
    const value = (await redis.command('HGET', `${keyPrefix}record:${record.id}`, 'value')).split('\r\n')[1]!;
    const stored = JSON.parse(value) as {
      adoptedAt?: string;
      lastRotationAt?: string;
      registrations: Array<{ clientSecret: string; registrationAccessToken: string }>;
    };
    assert.ok(stored.adoptedAt && stored.lastRotationAt, 'adopted and rotated');
    assert.equal(sandbox.calls('agents.register'), 1, 'only the SDK onboarded');
    const sdkState = JSON.parse(file) as SdkState;
    const secrets = [
      boarding.content.iat,
      sdkState.response.client_secret!,
      sdkState.response.registration_access_token,
      ...stored.registrations.flatMap((r) => [r.clientSecret, r.registrationAccessToken]),
    ];
    assert.deepEqual(H.leaks(secrets), []);
  });
});
