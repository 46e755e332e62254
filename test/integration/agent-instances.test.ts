import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { callAgent, deployAgentFlow } from '../helpers/agent-flows.js';
import { NodeRedProcess } from '../helpers/node-red-process.js';
import { RedisServer } from '../helpers/redis-server.js';
import { TEST_BACKOFF } from '../helpers/settings.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Several Node-RED processes, one agent, its state on Redis: both take
 * tokens while one rotates (exactly one onboarding, one rotation, no error in
 * either flow), and a "container restart" (a new user directory, the same
 * Redis) keeps the agent without onboarding again.
 */
describe('one agent shared by Node-RED processes through Redis', function () {
  this.timeout(120_000);
  let sandbox: Sandbox;
  let redis: RedisServer;
  const running: NodeRedProcess[] = [];
  const keyPrefix = 'nr-instances:';

  before(async () => {
    sandbox = await startSandbox();
    redis = await RedisServer.start();
    // Short agent tokens: each instance fetches new ones while the test runs, across the rotation.
    sandbox.lifetimes.agentToken = 2;
  });
  after(async () => {
    for (const red of running) await red.stop();
    await redis?.stop();
    await sandbox?.stop();
  });

  function start(): Promise<NodeRedProcess> {
    return NodeRedProcess.start({
      iiotAuth: { ...TEST_BACKOFF, agentLockStaleMs: 2000, agentStore: { redis: { url: redis.url, keyPrefix } } },
    }).then((red) => {
      running.push(red);
      return red;
    });
  }

  it('two processes take tokens while one rotates: one onboarding, one rotation, no error; a restarted container keeps the agent', async () => {
    const record = sandbox.agents.create({ securityProfile: 'SHARED_SECRET' });
    const boardingConfig = JSON.stringify(sandbox.agents.boardingConfiguration(record.id));
    const [a, b] = await Promise.all([start(), start()]);
    await Promise.all([deployAgentFlow(a!, boardingConfig), deployAgentFlow(b!, boardingConfig)]);

    // Both start at once: one onboards, the other waits for its lock and reads the result.
    const first = await Promise.all([callAgent(a!, 'token'), callAgent(b!, 'token')]);
    assert.deepEqual(
      first.map((r) => r.ok),
      [true, true],
      JSON.stringify(first),
    );
    assert.equal(sandbox.calls('agents.register'), 1, 'onboarded once');

    // Tokens from both, all the time, while A rotates once.
    const served = { a: 0, b: 0 };
    const errors: unknown[] = [];
    let stop = false;
    const load = (red: NodeRedProcess, name: 'a' | 'b') =>
      (async () => {
        while (!stop) {
          const r = await callAgent(red, 'token');
          if (r.ok) served[name] += 1;
          else errors.push({ instance: name, ...r });
          await new Promise((done) => setTimeout(done, 20)); // a pace, not a wait: steady load, not a flood
        }
      })();
    const loads = [load(a!, 'a'), load(b!, 'b')];
    await waitFor(() => served.a >= 5 && served.b >= 5, { what: () => `both instances to serve tokens: ${JSON.stringify({ served, errors })}` });
    const rotated = await callAgent(a!, 'rotate');
    assert.equal(rotated.ok, true, JSON.stringify(rotated));
    const servedAtRotation = { ...served };
    // Past the lifetime of every token taken before the rotation (the sandbox rounds a token's iat up to the
    // next whole second), and both instances served since: both must have switched by then.
    const oldTokensExpired = Date.now() + (sandbox.lifetimes.agentToken + 1) * 1000;
    await waitFor(() => Date.now() > oldTokensExpired && served.a > servedAtRotation.a && served.b > servedAtRotation.b, {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: () => `the tokens from before the rotation to expire while both serve: ${JSON.stringify({ served, servedAtRotation, errors })}`,
    });
    stop = true;
    await Promise.all(loads);

    // Token requests the platform refused (401): all token requests less the tokens it issued.
    const refused = sandbox.calls('agents.token') - sandbox.agents.status(record.id).tokensIssued;
    const figures = {
      served,
      servedAfterRotation: { a: served.a - servedAtRotation.a, b: served.b - servedAtRotation.b },
      errors: errors.length,
      rotations: sandbox.calls('agents.rotate'),
      tokenRequests: sandbox.calls('agents.token'),
      refused,
    };
    console.log(`      figures: ${JSON.stringify(figures)}`);
    assert.deepEqual(errors, [], 'no instance saw an error');
    // B switches by reading the new version before its next token; only a token request B had already
    // signed with the old credentials when A first used the new ones could be refused (then B re-reads).
    assert.ok(refused <= 1, `refused token requests: ${refused}`);
    assert.ok(figures.servedAfterRotation.a > 0 && figures.servedAfterRotation.b > 0, JSON.stringify(figures));
    assert.equal(sandbox.calls('agents.rotate'), 1, 'rotated once');
    assert.equal(sandbox.calls('agents.register'), 1, 'never onboarded again');
    assert.equal(sandbox.agents.status(record.id).activeRegistration!.number, 2, 'the new registration is the one in use');
    // B picked the new registration up from Redis.
    assert.equal((await callAgent(b!, 'status')).kept, 2);

    // A container restart: A goes, a new one with a fresh user directory and the same Redis takes over.
    await a!.stop();
    running.splice(running.indexOf(a!), 1);
    const c = await start();
    await deployAgentFlow(c, boardingConfig);
    const afterRestart = await callAgent(c, 'token');
    assert.equal(afterRestart.ok, true, JSON.stringify(afterRestart));
    assert.equal((await callAgent(c, 'status')).kept, 2);
    assert.equal(sandbox.calls('agents.register'), 1, 'the restarted container did not onboard');

    // No secret in anything the processes printed.
    const secrets = [JSON.parse(boardingConfig).content.iat as string];
    const stored = JSON.parse((await redis.command('HGET', `${keyPrefix}record:${record.id}`, 'value')).split('\r\n')[1]!) as {
      registrations: Array<{ clientSecret: string; registrationAccessToken: string }>;
    };
    for (const r of stored.registrations) secrets.push(r.clientSecret, r.registrationAccessToken);
    for (const red of [a!, b!, c]) for (const secret of secrets) assert.ok(!red.output.includes(secret), 'a secret in the output of Node-RED');
  });
});
