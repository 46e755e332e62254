import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { type AgentAnswer, callAgent, deployAgentFlow } from '../helpers/agent-flows.js';
import { NodeRedProcess } from '../helpers/node-red-process.js';
import { MASTER_NAME, RedisSentinelGroup } from '../helpers/redis-sentinel.js';
import { TEST_BACKOFF } from '../helpers/settings.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Two Node-RED processes share one agent through Redis Sentinel (a primary,
 * a replica, three Sentinels, all real processes) while the primary is
 * killed and one of them rotates: both follow the failover by themselves,
 * no token request fails outside the failover, the agent rotates once, and
 * the rotated credentials are used once the new primary has a replica that
 * acknowledged them.
 */
describe('one agent shared by Node-RED processes through Redis Sentinel, across a failover', function () {
  this.timeout(180_000);
  let sandbox: Sandbox;
  let group: RedisSentinelGroup;
  const running: NodeRedProcess[] = [];

  before(async () => {
    sandbox = await startSandbox();
    group = await RedisSentinelGroup.start();
    // Short agent tokens: each instance fetches new ones (reading Redis) all through the failover.
    sandbox.lifetimes.agentToken = 2;
  });
  after(async () => {
    for (const red of running) await red.stop();
    await group?.stop();
    await sandbox?.stop();
  });

  async function start(): Promise<NodeRedProcess> {
    const redis = { sentinels: group.sentinelNodes, name: MASTER_NAME, keyPrefix: 'nr-sentinel:', replicaTimeoutMs: 1000, timeoutMs: 20_000 };
    const red = await NodeRedProcess.start({ iiotAuth: { ...TEST_BACKOFF, agentLockStaleMs: 2000, agentStore: { redis } } });
    running.push(red);
    return red;
  }

  it('both serve tokens while the primary fails and one rotates: no error outside the failover, one rotation, then the new registration', async () => {
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const boardingConfig = JSON.stringify(sandbox.agents.boardingConfiguration(record.id));
    const [a, b] = await Promise.all([start(), start()]);
    await Promise.all([deployAgentFlow(a, boardingConfig), deployAgentFlow(b, boardingConfig)]);
    const first = await Promise.all([callAgent(a, 'token'), callAgent(b, 'token')]);
    assert.deepEqual(
      first.map((r) => r.ok),
      [true, true],
      JSON.stringify(first),
    );

    const served = { a: 0, b: 0 };
    const errors: Array<AgentAnswer & { instance: string; at: number }> = [];
    let stop = false;
    const load = async (red: NodeRedProcess, name: 'a' | 'b') => {
      while (!stop) {
        const r = await callAgent(red, 'token');
        if (r.ok) served[name] += 1;
        else errors.push({ instance: name, at: Date.now(), ...r });
        await new Promise((done) => setTimeout(done, 20)); // a pace, not a wait: steady load, not a flood
      }
    };
    const loads = [load(a, 'a'), load(b, 'b')];
    await waitFor(() => served.a >= 5 && served.b >= 5, { what: () => `both instances to serve tokens: ${JSON.stringify({ served, errors })}` });

    // The failover window: from the kill until the promoted primary has a replica again.
    const window = { from: Date.now(), to: Number.POSITIVE_INFINITY };
    const { old, promoted } = await group.killPrimary();
    // A rotation that meets the failover: it waits for the new primary, then for a replica to acknowledge.
    const rotating = callAgent(a, 'rotate');
    await group.promoted(promoted);
    await group.restoreReplica(old, promoted);
    window.to = Date.now();
    const rotated = await rotating;
    assert.equal(rotated.ok, true, JSON.stringify(rotated));

    const servedAfter = { ...served };
    await waitFor(() => sandbox.agents.status(record.id).activeRegistration?.number === 2 && served.a > servedAfter.a + 3 && served.b > servedAfter.b + 3, {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: () => `the rotated registration in use, both serving: ${JSON.stringify({ served, errors, status: sandbox.agents.status(record.id) })}`,
    });
    stop = true;
    await Promise.all(loads);

    const outside = errors.filter((e) => e.at < window.from || e.at > window.to);
    console.log(
      `      figures: ${JSON.stringify({ served, failoverMs: window.to - window.from, errorsInFailover: errors.length - outside.length, errorsOutside: outside.length })}`,
    );
    assert.deepEqual(outside, [], 'no error outside the failover');
    assert.equal(sandbox.calls('agents.register'), 1, 'onboarded once');
    assert.equal(sandbox.calls('agents.rotate'), 1, 'rotated once');
    assert.equal((await callAgent(b, 'status')).kept, 2, 'the other instance reads the rotated state');

    // No secret in anything the processes printed.
    const stored = JSON.parse(String(await promoted.query('HGET', `nr-sentinel:record:${record.id}`, 'value'))) as {
      registrations: Array<{ clientSecret: string; registrationAccessToken: string }>;
    };
    const secrets = [JSON.parse(boardingConfig).content.iat as string, ...stored.registrations.flatMap((r) => [r.clientSecret, r.registrationAccessToken])];
    for (const red of [a, b]) for (const secret of secrets) assert.ok(!red.output.includes(secret), 'a secret in the output of Node-RED');
  });
});
