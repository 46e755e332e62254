import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MindConnectAgent, MindSphereSdk, TokenManagerAuth } from '@mindconnect/mindconnect-nodejs';
import { DEFAULT_LIFETIMES, startSandbox, type BoardingConfiguration, type Sandbox, type SecurityProfile } from '../../src/sandbox/index.js';
import { basicAuth, rsa3072Pkcs1, sdkEnvironment, type SdkSandboxEnvironment } from './sdk-run.js';

/**
 * The official Siemens Node SDK (@mindconnect/mindconnect-nodejs, known to
 * work against the real Insights Hub), unmodified and unmocked, against the
 * sandbox: app credentials with token validation, and for both security
 * profiles the agent's whole life (app-side create and boarding, onboarding,
 * token and validation, rotation forced by a short secret lifetime, data
 * source configuration with the agent's and with app credentials,
 * offboarding, onboarding again, delete). If the sandbox drifts from what the
 * real service does, as far as the SDK shows it, this fails.
 */
/** The SDK's own token check (signature with the platform's published key, expiry), which GetToken also runs; private in its typings only. */
function validate(client: MindConnectAgent | TokenManagerAuth): Promise<boolean> {
  return (client as unknown as { ValidateToken(): Promise<boolean> }).ValidateToken();
}

describe('compatibility: the official Siemens SDK against the sandbox', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  let env: SdkSandboxEnvironment;
  let sdk: MindSphereSdk;

  before(async () => {
    env = sdkEnvironment();
    sandbox = await startSandbox();
    const app = sandbox.demo.insightsHubApp;
    sdk = new MindSphereSdk({
      gateway: sandbox.url,
      basicAuth: basicAuth(app.clientId, app.clientSecret),
      tenant: app.hostTenant,
      usertenant: app.userTenant,
      appName: app.appName,
      appVersion: app.appVersion,
    });
  });
  after(async () => {
    await sandbox.stop();
    const hosts = env.remoteHosts();
    env.restore();
    // Every connection the run opened went to the sandbox on loopback: the SDK never tried the network.
    assert.ok(hosts.length > 0);
    assert.deepEqual(
      hosts.filter((host) => host !== '127.0.0.1'),
      [],
    );
  });
  afterEach(() => Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES));

  describe('app credentials (TokenManagerAuth)', () => {
    it('GetToken: a token from the Technical Token Manager, validated with /token_keys on the piam host (the sandbox origin)', async () => {
      const app = sandbox.demo.insightsHubApp;
      const auth = new TokenManagerAuth(sandbox.url, basicAuth(app.clientId, app.clientSecret), app.hostTenant, app.userTenant, app.appName, app.appVersion);
      sandbox.resetCalls();
      const token = await auth.GetToken();
      assert.equal(token.split('.').length, 3);
      assert.equal(await validate(auth), true);
      assert.equal(await auth.GetToken(), token, 'a valid token is reused');
      assert.equal(sandbox.calls('insightsHub.token'), 1);
      assert.ok(sandbox.calls('insightsHub.tokenKeys') >= 1, 'the SDK validated the token with the token keys');
    });

    it('GetToken refuses wrong credentials', async () => {
      const app = sandbox.demo.insightsHubApp;
      const auth = new TokenManagerAuth(sandbox.url, basicAuth(app.clientId, 'wrong-secret'), app.hostTenant, app.userTenant, app.appName, app.appVersion);
      await assert.rejects(auth.GetToken(), /Unauthorized/);
    });
  });

  for (const profile of ['SHARED_SECRET', 'RSA_3072'] as SecurityProfile[]) {
    describe(`an agent with ${profile}`, () => {
      let agentId: string;
      let boarding: BoardingConfiguration;
      let agent: MindConnectAgent;
      const key = profile === 'RSA_3072' ? rsa3072Pkcs1() : undefined;
      const agents = () => sdk.GetAgentManagementClient();

      function newAgent(configuration: BoardingConfiguration): MindConnectAgent {
        const created = new MindConnectAgent(configuration as never, undefined, env.stateDir);
        if (key) created.SetupAgentCertificate(key);
        return created;
      }

      it('app side: PostAgent needs entityId; with it, 201; GetBoardingConfiguration twice gives the same IAT; status NOT_ONBOARDED', async () => {
        await assert.rejects(agents().PostAgent({ name: `no asset ${profile}`, securityProfile: profile } as never), /Bad Request.*entityId is required/);
        const entityId = randomUUID().replace(/-/g, '');
        const created = await agents().PostAgent({ name: `compat ${profile}`, securityProfile: profile as never, entityId });
        agentId = created.id!;
        assert.equal(created.entityId, entityId);
        boarding = (await agents().GetBoardingConfiguration(agentId)) as unknown as BoardingConfiguration;
        assert.equal(boarding.content.clientId, agentId);
        assert.deepEqual(boarding.content.clientCredentialProfile, [profile]);
        const again = (await agents().GetBoardingConfiguration(agentId)) as unknown as BoardingConfiguration;
        assert.equal(again.content.iat, boarding.content.iat);
        assert.deepEqual(await agents().GetOnboardingStatus(agentId), { status: 'NOT_ONBOARDED' });
      });

      it('OnBoard: ONBOARDED, its state saved in the state folder; the platform says ONBOARDING', async () => {
        // A secret that expires within the SDK's 25 h margin, so its first token request rotates (below).
        sandbox.lifetimes.agentClientSecret = 3600;
        agent = newAgent(boarding);
        assert.equal(await agent.OnBoard(), 'ONBOARDED');
        assert.equal(agent.IsOnBoarded(), true);
        assert.ok(fs.existsSync(path.join(env.stateDir, `${agentId}.json`)));
        assert.deepEqual(await agents().GetOnboardingStatus(agentId), { status: 'ONBOARDING' });
      });

      it('GetAgentToken: rotates the short-lived secret first (RenewToken), then gets and validates a token with token_key', async () => {
        sandbox.resetCalls();
        const token = await agent.GetAgentToken();
        assert.equal(token.split('.').length, 3);
        assert.equal(sandbox.calls('agents.rotate'), 1, 'the SDK rotated the secret that expires within 25 h');
        assert.equal(sandbox.agents.status(agentId).registrations, 2);
        assert.ok(sandbox.calls('agents.tokenKey') >= 1, 'the SDK validated the token with token_key');
        assert.equal(await validate(agent), true);
        assert.deepEqual(await agents().GetOnboardingStatus(agentId), { status: 'ONBOARDED' });
      });

      it('GetAgentToken again: the cached token validates; no rotation with a 7-day secret', async () => {
        sandbox.resetCalls();
        await agent.GetAgentToken();
        assert.equal(sandbox.calls('agents.rotate'), 0);
        assert.equal(sandbox.agents.status(agentId).registrations, 2);
        assert.equal(await validate(agent), true);
      });

      it('RenewToken after a restart: a new agent object from the state folder gets a token with the rotated credentials', async () => {
        const restarted = newAgent(boarding);
        assert.equal(restarted.IsOnBoarded(), true, 'read from the state folder');
        const token = await restarted.GetAgentToken();
        assert.equal(await validate(restarted), true);
        assert.ok(token);
      });

      it('data source configuration with the agent token: Get (eTag 0), Put (If-Match 0), Get', async () => {
        const empty = await agent.GetDataSourceConfiguration();
        assert.equal(empty.eTag, '0');
        assert.deepEqual(empty.dataSources, []);
        const saved = await agent.PutDataSourceConfiguration({
          configurationId: `config-${profile}`,
          dataSources: [{ name: 'press', dataPoints: [{ id: 'dp-pressure', name: 'pressure', type: 'DOUBLE' as never, unit: 'bar' }] }],
        });
        assert.equal(saved.eTag, '1');
        const read = await agent.GetDataSourceConfiguration();
        assert.equal(read.configurationId, `config-${profile}`);
        assert.equal(read.dataSources[0].dataPoints[0].id, 'dp-pressure');
      });

      it("data source configuration with app credentials (the SDK's Agent Management client)", async () => {
        const read = await agents().GetDataSourceConfiguration(agentId);
        assert.equal(read.eTag, '1');
        const saved = await agents().PutDataSourceConfiguration(
          agentId,
          { configurationId: `config-${profile}-2`, dataSources: read.dataSources },
          { ifMatch: `${read.eTag}` },
        );
        assert.equal(saved.eTag, '2');
        await assert.rejects(
          agents().PutDataSourceConfiguration(agentId, { configurationId: 'stale', dataSources: [] }, { ifMatch: '1' }),
          /Precondition Failed/,
        );
      });

      it("OffboardAgent: NOT_ONBOARDED; the agent's credentials no longer get a token; a new IAT onboards it again", async () => {
        assert.deepEqual(await agents().OffboardAgent(agentId), { status: 'NOT_ONBOARDED' });
        assert.deepEqual(await agents().GetOnboardingStatus(agentId), { status: 'NOT_ONBOARDED' });
        await assert.rejects(newAgent(boarding).GetAgentToken(), /Unauthorized/);
        const fresh = (await agents().GetBoardingConfiguration(agentId)) as unknown as BoardingConfiguration;
        assert.notEqual(fresh.content.iat, boarding.content.iat, 'offboarding generated a new IAT');
        const again = newAgent(fresh);
        assert.equal(again.IsOnBoarded(), false, 'a changed boarding configuration is onboarded afresh');
        assert.equal(await again.OnBoard(), 'ONBOARDED');
        await again.GetAgentToken();
        assert.equal(await validate(again), true);
      });

      it("DeleteAgent with the agent's eTag as If-Match; then GetAgent is 404", async () => {
        const current = await agents().GetAgent(agentId);
        await agents().DeleteAgent(agentId, { ifMatch: `${current.eTag}` });
        await assert.rejects(agents().GetAgent(agentId), /Not Found/);
      });
    });
  }
});
