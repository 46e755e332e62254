import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentErrorCode } from '../../src/platforms/insights-hub-agent/errors.js';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import { AGENT_RECORD_WORDS } from '../../src/nodes/agent-store.js';
import { HttpClient } from '../../src/core/http/index.js';
import { KeyedMutex, type RecordStore } from '../../src/core/record-store.js';
import { RedisRecordStore } from '../../src/core/redis-record-store.js';
import { importAgentKey, parseBoardingConfiguration } from '../../src/platforms/insights-hub-agent/protocol.js';
import { AgentLifecycle, type AgentStep } from '../../src/platforms/insights-hub-agent/lifecycle.js';
import { readAgentState, type SecurityProfile } from '../../src/platforms/insights-hub-agent/state.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { RedisServer } from '../helpers/redis-server.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The agent life cycle against the sandbox's Agent Management: onboarding,
 * rotation, tokens, and the crash matrix (each step failed in turn, then a
 * restart must get a token without onboarding again).
 */
type StoreKind = 'file' | 'redis';

/**
 * The agents' time in these tests: the life cycle's clock (its `now` option)
 * and the sandbox's agents' clock (clockSkewMs), moved forward together, so
 * a test reaches an expiry without waiting for it.
 */
const clock = { offsetMs: 0 };
const now = (): number => Date.now() + clock.offsetMs;

describe('Insights Hub agent life cycle', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  let http: HttpClient;
  let root: string;
  let redis: RedisServer;
  const agents: AgentLifecycle[] = [];
  const stores: RecordStore[] = [];

  before(async () => {
    sandbox = await startSandbox();
    http = new HttpClient({ timeoutMs: 5000 });
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-agents-'));
    redis = await RedisServer.start();
  });
  after(async () => {
    await http.close();
    await sandbox.stop();
    await redis.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });
  afterEach(async () => {
    while (agents.length) await agents.pop()!.close();
    while (stores.length) await stores.pop()!.close();
    sandbox.clearFaults();
    sandbox.resetCalls();
    sandbox.clockSkewMs = 0;
    clock.offsetMs = 0;
    Object.assign(sandbox.lifetimes, { agentIat: 7 * 24 * 3600, agentClientSecret: 7 * 24 * 3600, agentToken: 3600 });
  });

  const child = path.join(__dirname, '..', 'helpers', 'agent-child.js');

  /** Moves both clocks to a moment given as an ISO time, plus a margin (negative: before it). */
  function advanceTo(iso: string | undefined, marginMs: number): void {
    const at = Date.parse(iso ?? '');
    assert.ok(!Number.isNaN(at), `no time in ${String(iso)}`);
    const by = Math.max(0, at + marginMs - now());
    clock.offsetMs += by;
    sandbox.clockSkewMs += by;
  }

  function runChild(store: string, operation: 'onboard' | 'rotate' | 'token', crashAt: AgentStep | '-', config: string) {
    return new Promise<{ killed: boolean; result?: { ok: boolean; code?: string; message?: string } }>((resolve) => {
      const proc = execFile(process.execPath, [child, store, operation, crashAt], { timeout: 30_000 }, (err, stdout) => {
        const killed = (err as { signal?: string } | null)?.signal === 'SIGKILL';
        const line = stdout.trim().split('\n').filter(Boolean).at(-1);
        resolve({ killed, ...(line ? { result: JSON.parse(line) } : {}) });
      });
      proc.stdin!.end(config);
    });
  }

  let dirs = 0;
  /**
   * A new agent on the platform, and where its state goes: `dir` for the file
   * store, `store` as the child process takes it (the same directory, or a
   * fresh key prefix on the test Redis).
   */
  function newAgent(profile: SecurityProfile = 'SHARED_SECRET', kind: StoreKind = 'file') {
    const record = sandbox.agents.create({ securityProfile: profile });
    const config = JSON.stringify(sandbox.agents.boardingConfiguration(record.id));
    const dir = path.join(root, `dir${++dirs}`);
    const store = kind === 'file' ? dir : JSON.stringify({ redis: { url: redis.url, keyPrefix: `a${dirs}:` } });
    return { id: record.id, config, dir, store, kind };
  }

  /** A record store as the agent's other instances would open it. */
  function recordStore(spec: string): RecordStore {
    const store = spec.startsWith('{') ? new RedisRecordStore(JSON.parse(spec).redis, AGENT_RECORD_WORDS) : new FileRecordStore(spec, AGENT_RECORD_WORDS);
    stores.push(store);
    return store;
  }

  function lifecycle(config: string, store: string, extra: Partial<ConstructorParameters<typeof AgentLifecycle>[0]> = {}) {
    const boarding = parseBoardingConfiguration(config);
    const records = recordStore(store);
    const agent = new AgentLifecycle({
      store: records,
      mutex: new KeyedMutex(),
      boarding,
      profile: boarding.profiles[0]!,
      lockStaleMs: 2000,
      now,
      ...extra,
    });
    agents.push(agent);
    return agent;
  }

  describe('onboarding and tokens', () => {
    for (const profile of ['SHARED_SECRET', 'RSA_3072'] as const) {
      it(`${profile}: onboards on first use, saves the state with mode 0600, gets tokens; onboarding again does nothing`, async () => {
        const a = newAgent(profile);
        const agent = lifecycle(a.config, a.store);
        const token = await agent.fetchToken(http);
        assert.equal(token.type, 'bearer');
        assert.equal(sandbox.agents.status(a.id).boarding, 'ONBOARDED');
        const file = path.join(a.dir, `${a.id}.json`);
        assert.equal(fs.statSync(file).mode & 0o777, 0o600);
        const again = await agent.onboard(http);
        assert.equal(again.alreadyOnboarded, true);
        assert.equal(sandbox.calls('agents.register'), 1);
        const status = await agent.status();
        assert.equal(status.onboarded, true);
        assert.ok(status.clientSecretExpiresAt);
      });
    }

    for (const format of ['pkcs1', 'pkcs8'] as const) {
      it(`RSA_3072 with the user's own ${format.toUpperCase()} key`, async () => {
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
        const pem = privateKey.export({ type: format, format: 'pem' }).toString();
        assert.match(pem, format === 'pkcs1' ? /BEGIN RSA PRIVATE KEY/ : /BEGIN PRIVATE KEY/);
        const a = newAgent('RSA_3072');
        const agent = lifecycle(a.config, a.store, { userKey: importAgentKey(pem) });
        await agent.fetchToken(http);
        const state = JSON.parse(fs.readFileSync(path.join(a.dir, `${a.id}.json`), 'utf8')) as { registrations: Array<{ privateKey: string }> };
        assert.equal(state.registrations[0]!.privateKey, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
      });
    }

    it('refuses a key that is not RSA 3072, saying how to make one', () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      assert.throws(() => importAgentKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()), /2048-bit: RSA_3072 needs a 3072-bit RSA key/);
      assert.throws(() => importAgentKey('not a key'), /not a PEM private key/);
    });

    it('an expired IAT says when it expired and what to do', async () => {
      sandbox.lifetimes.agentIat = 1;
      const a = newAgent();
      // Past the expiry the configuration itself states.
      advanceTo((JSON.parse(a.config) as { expiration: string }).expiration, 300);
      await assert.rejects(lifecycle(a.config, a.store).fetchToken(http), (err: Error & { code: string }) => {
        assert.equal(err.code, AgentErrorCode.IAT_EXPIRED);
        assert.match(err.message, /the IAT expired on \d{4}-\d\d-\d\d: download a new boarding configuration/);
        return true;
      });
    });

    it('a reused IAT (the state was lost) says what to do', async () => {
      const a = newAgent();
      await lifecycle(a.config, a.store).fetchToken(http);
      await assert.rejects(lifecycle(a.config, path.join(root, 'elsewhere')).fetchToken(http), {
        code: AgentErrorCode.IAT_USED,
        message: /the IAT was already used: this agent is onboarded elsewhere, or its state was lost; offboard it and download a new boarding configuration/,
      });
    });

    it('a new boarding configuration for the same agent starts a new onboarding', async () => {
      const a = newAgent();
      await lifecycle(a.config, a.store).fetchToken(http);
      await agents.pop()!.close();
      sandbox.agents.offboard(a.id);
      const fresh = JSON.stringify(sandbox.agents.boardingConfiguration(a.id));
      const agent = lifecycle(fresh, a.store);
      const result = await agent.onboard(http);
      assert.equal(result.alreadyOnboarded, false);
      await agent.fetchToken(http);
      assert.equal(sandbox.calls('agents.register'), 2);
    });

    it('a clock that is off gets an error that says so', async () => {
      const a = newAgent();
      const agent = lifecycle(a.config, a.store);
      await agent.onboard(http);
      sandbox.clockSkewMs = -300_000; // the platform is 5 minutes behind: our assertion looks issued in the future
      await assert.rejects(agent.fetchToken(http), {
        code: AgentErrorCode.CLOCK_SKEW,
        message: /check this machine's clock \(it is (299|300|301) s off the server's Date header\)/,
      });
    });

    it('a client secret that expired while the agent was offline is renewed with the registration access token', async () => {
      sandbox.lifetimes.agentClientSecret = 2;
      const a = newAgent();
      const agent = lifecycle(a.config, a.store);
      await agent.onboard(http);
      advanceTo((await agent.status()).clientSecretExpiresAt, 300);
      await agent.fetchToken(http); // the RAT does not expire: rotation revives the agent, no onboarding
      assert.equal(sandbox.calls('agents.rotate'), 1);
      assert.equal(sandbox.calls('agents.register'), 1);
    });

    it('an expired client secret that cannot be rotated either says to onboard again', async () => {
      sandbox.lifetimes.agentClientSecret = 2;
      const a = newAgent();
      const agent = lifecycle(a.config, a.store);
      await agent.onboard(http);
      advanceTo((await agent.status()).clientSecretExpiresAt, 300);
      sandbox.fault('agents.rotate', { kind: 'status', status: 401 });
      await assert.rejects(agent.fetchToken(http), {
        code: AgentErrorCode.SECRET_EXPIRED,
        message: /the client secret expired on \d{4}-\d\d-\d\d while the agent was offline: onboard again/,
      });
    });
  });

  describe('rotation', () => {
    it('rotates with the registration access token; the new credentials get a token and retire the old', async () => {
      for (const profile of ['SHARED_SECRET', 'RSA_3072'] as const) {
        const a = newAgent(profile);
        const agent = lifecycle(a.config, a.store);
        await agent.fetchToken(http);
        await agent.rotate(http);
        await agent.fetchToken(http);
        const status = sandbox.agents.status(a.id);
        assert.equal(status.registrations, 2);
        assert.equal(status.activeRegistration!.number, 2, `${profile}: the new registration is in use`);
        assert.ok((await agent.status()).lastRotationAt);
      }
    });

    it('rotates by itself when the secret nears expiry', async () => {
      sandbox.lifetimes.agentClientSecret = 4;
      const a = newAgent();
      const agent = lifecycle(a.config, a.store, { random: () => 0 }); // rotate at 75 % of the lifetime
      await agent.fetchToken(http);
      assert.equal(sandbox.calls('agents.rotate'), 0);
      advanceTo((await agent.status()).clientSecretExpiresAt, -500); // inside the last 25 %, not yet expired
      await agent.fetchToken(http);
      assert.equal(sandbox.calls('agents.rotate'), 1);
      assert.equal(sandbox.agents.status(a.id).activeRegistration!.number, 2);
    });

    it('two rotations at once in one process run one after the other', async () => {
      const a = newAgent();
      const agent = lifecycle(a.config, a.store);
      await agent.fetchToken(http);
      await Promise.all([agent.rotate(http), agent.rotate(http)]);
      await agent.fetchToken(http);
      assert.equal(sandbox.agents.status(a.id).registrations, 3);
      assert.equal(sandbox.agents.status(a.id).activeRegistration!.number, 3);
    });

    it('two config nodes of one agent in one process share its lock; a second process is refused with a clear error', async () => {
      const a = newAgent();
      const first = lifecycle(a.config, a.store);
      await first.fetchToken(http);
      const second = lifecycle(a.config, a.store); // as a second config node of the same agent
      await second.fetchToken(http);
      const other = await runChild(a.store, 'token', '-', a.config);
      assert.equal(other.result!.code, AgentErrorCode.AGENT_LOCKED, other.result!.message);
      assert.match(other.result!.message!, /in use by another Node-RED process/);
    });
  });

  for (const kind of ['file', 'redis'] as const)
    describe(`crash matrix on the ${kind} store: each step failed in turn, then a restart`, () => {
      const onboardingSteps: AgentStep[] = ['onboard:saved-intent', 'onboard:answered', 'onboard:saved'];
      for (const profile of ['SHARED_SECRET', 'RSA_3072'] as const) {
        for (const step of onboardingSteps) {
          it(`${profile}: killed at ${step} during onboarding`, async () => {
            const a = newAgent(profile, kind);
            const crashed = await runChild(a.store, 'onboard', step, a.config);
            assert.equal(crashed.killed, true, `the child did not crash at ${step}: ${JSON.stringify(crashed.result)}`);
            const restarted = await runChild(a.store, 'token', '-', a.config);
            if (step === 'onboard:answered' && profile === 'SHARED_SECRET') {
              // The platform shows the secret only in the answer that died with the process:
              // nothing can recover it. The error says what to do.
              assert.equal(restarted.result!.code, AgentErrorCode.IAT_USED, restarted.result!.message);
            } else {
              assert.equal(restarted.result!.ok, true, restarted.result!.message);
              assert.equal(sandbox.calls('agents.register') <= 2, true);
            }
          });
        }

        it(`${profile}: the onboarding answer lost on the way (the platform registered the agent)`, async () => {
          const a = newAgent(profile, kind);
          sandbox.fault('agents.register', { kind: 'dropResponse', times: 1 });
          const lost = await runChild(a.store, 'onboard', '-', a.config);
          const restarted = lost.result!.ok ? lost : await runChild(a.store, 'token', '-', a.config);
          if (profile === 'SHARED_SECRET') assert.equal(restarted.result!.code, AgentErrorCode.IAT_USED);
          else assert.equal(restarted.result!.ok, true, restarted.result!.message);
        });

        for (const step of ['rotate:saved-intent', 'rotate:answered', 'rotate:saved'] as AgentStep[]) {
          it(`${profile}: killed at ${step} during rotation`, async () => {
            const a = newAgent(profile, kind);
            assert.equal((await runChild(a.store, 'onboard', '-', a.config)).result!.ok, true);
            const crashed = await runChild(a.store, 'rotate', step, a.config);
            assert.equal(crashed.killed, true, `the child did not crash at ${step}: ${JSON.stringify(crashed.result)}`);
            const restarted = await runChild(a.store, 'token', '-', a.config);
            assert.equal(restarted.result!.ok, true, restarted.result!.message);
            // And the agent can still rotate afterwards.
            assert.equal((await runChild(a.store, 'rotate', '-', a.config)).result!.ok, true);
            assert.equal(sandbox.calls('agents.register'), 1, 'never onboarded again');
          });
        }

        it(`${profile}: the rotation answer lost on the way (the platform rotated)`, async () => {
          const a = newAgent(profile, kind);
          assert.equal((await runChild(a.store, 'onboard', '-', a.config)).result!.ok, true);
          sandbox.fault('agents.rotate', { kind: 'dropResponse', times: 1 });
          const lost = await runChild(a.store, 'rotate', '-', a.config);
          assert.equal(lost.result!.ok, false);
          const restarted = await runChild(a.store, 'token', '-', a.config);
          assert.equal(restarted.result!.ok, true, restarted.result!.message);
          assert.equal((await runChild(a.store, 'rotate', '-', a.config)).result!.ok, true, 'rotation again with the stored RAT');
          assert.equal(sandbox.calls('agents.register'), 1);
        });
      }

      it('the state write fails after a rotation answer: the new credentials stay unused, the old keep working, the write is retried', async () => {
        const a = newAgent('SHARED_SECRET', kind);
        const records = recordStore(a.store);
        let failWrites = 0;
        // The same store, but its next writes fail (a full disk, say).
        const failing = withWrites(records, async (write) => {
          if (failWrites > 0) {
            failWrites -= 1;
            throw Object.assign(new Error('disk full'), { code: AgentErrorCode.AGENT_STATE_ERROR });
          }
          return write();
        });
        const agent = lifecycle(a.config, a.store, { store: failing });
        await agent.fetchToken(http);
        failWrites = 1;
        await assert.rejects(agent.rotate(http), /disk full/);
        assert.equal(sandbox.agents.status(a.id).activeRegistration!.number, 1);
        await agent.fetchToken(http); // the retried write succeeds first
        const saved = await readAgentState(records, a.id);
        assert.equal(saved!.state.registrations.length, 2);
      });
    });

  describe('several instances on Redis, failures of Redis, moving between stores', () => {
    it('two instances due to rotate at once: exactly one rotates, the other switches to the new registration', async () => {
      sandbox.lifetimes.agentClientSecret = 4;
      const a = newAgent('SHARED_SECRET', 'redis');
      // Two instances: their own store connections and mutexes, as two processes would have.
      const one = lifecycle(a.config, a.store, { random: () => 0 });
      const two = lifecycle(a.config, a.store, { random: () => 0 });
      await Promise.all([one.fetchToken(http), two.fetchToken(http)]);
      assert.equal(sandbox.calls('agents.register'), 1, 'onboarded once');
      advanceTo((await one.status()).clientSecretExpiresAt, -500); // inside the last 25 %
      await Promise.all([one.fetchToken(http), two.fetchToken(http), one.fetchToken(http), two.fetchToken(http)]);
      assert.equal(sandbox.calls('agents.rotate'), 1, 'one rotation');
      assert.equal((await one.status()).registrationsKept, 2);
      assert.equal((await two.status()).registrationsKept, 2);
      await two.fetchToken(http);
      assert.equal(sandbox.agents.status(a.id).activeRegistration!.number, 2);
    });

    it('a write refused by compare-and-set (another instance wrote meanwhile) is read again and re-applied: nothing lost', async () => {
      const a = newAgent('SHARED_SECRET', 'redis');
      const records = recordStore(a.store);
      let interfere = false;
      let refused = 0;
      const racing = withWrites(records, async (write) => {
        if (interfere) {
          // Another instance writes between our read and our write.
          interfere = false;
          const current = (await records.read(a.id))!;
          await records.write(a.id, { ...current.value, touchedBy: 'another instance' }, current.version);
        }
        try {
          return await write();
        } catch (err) {
          refused += 1;
          throw err;
        }
      });
      const agent = lifecycle(a.config, a.store, { store: racing });
      await agent.fetchToken(http);
      interfere = true;
      await agent.rotate(http);
      assert.equal(refused, 1, 'the first write was refused');
      const saved = (await readAgentState(records, a.id))!.state as unknown as { registrations: unknown[]; touchedBy?: string };
      assert.equal(saved.registrations.length, 2, 'the new registration was merged in');
      assert.equal(saved.touchedBy, 'another instance', "the other instance's write was kept");
      await agent.fetchToken(http);
      assert.equal(sandbox.agents.status(a.id).activeRegistration!.number, 2);
    });

    it('Redis unreachable at start: AGENT_STATE_ERROR, and no onboarding attempt with the IAT', async () => {
      const a = newAgent('SHARED_SECRET', 'redis');
      const nowhere = JSON.stringify({ redis: { url: `redis://127.0.0.1:${redis.port + 1}`, keyPrefix: 'x:', timeoutMs: 500 } });
      await assert.rejects(lifecycle(a.config, nowhere).fetchToken(http), { code: AgentErrorCode.AGENT_STATE_ERROR, message: /check that Redis runs/ });
      assert.equal(sandbox.calls('agents.register'), 0);
      assert.equal(sandbox.agents.status(a.id).boarding, 'NOT_ONBOARDED');
    });

    it('Redis killed during a rotation and restarted: the new credentials are saved once it is back, nothing is lost', async () => {
      const a = newAgent('SHARED_SECRET', 'redis');
      const spec = JSON.stringify({ redis: { ...JSON.parse(a.store).redis, timeoutMs: 500 } });
      let crash = false;
      const agent = lifecycle(a.config, spec, {
        onStep: async (step) => {
          if (crash && step === 'rotate:answered') await redis.kill();
        },
      });
      await agent.fetchToken(http);
      crash = true;
      await assert.rejects(agent.rotate(http), {
        code: AgentErrorCode.AGENT_STATE_ERROR,
        message: /new credentials are not used until it is saved|check that Redis runs/,
      });
      crash = false;
      await redis.start();
      // Redis's data survived (AOF, appendfsync always). Tokens may come from the old
      // registration while the client reconnects; the unsaved one is written with the
      // first operation that reaches Redis, and only then used.
      const other = lifecycle(a.config, a.store); // another instance reads what was saved
      await waitFor(
        async () => {
          await agent.fetchToken(http).catch(() => undefined);
          return (await other.status().catch(() => undefined))?.registrationsKept === 2;
        },
        { what: 'the rotated registration saved once Redis is back', timeoutMs: 20_000 },
      );
      assert.ok(await agent.fetchToken(http), 'tokens again once Redis is back');
      assert.equal(sandbox.calls('agents.register'), 1);
      assert.equal(sandbox.agents.status(a.id).activeRegistration!.number, 2, 'the rotated credentials are in use');
    });

    it('moves an agent from the file store to Redis and back without onboarding again', async () => {
      const a = newAgent('RSA_3072', 'redis');
      await lifecycle(a.config, a.dir).fetchToken(http); // on files
      await agents.pop()!.close();
      const files = recordStore(a.dir);
      const onRedis = recordStore(a.store);
      // To Redis: the first use copies the state file, then renames it.
      const moved = lifecycle(a.config, a.store, { importFrom: files });
      await moved.fetchToken(http);
      await moved.rotate(http);
      await moved.fetchToken(http);
      assert.ok(fs.existsSync(path.join(a.dir, `${a.id}.json.moved`)));
      assert.ok(!fs.existsSync(path.join(a.dir, `${a.id}.json`)));
      await agents.pop()!.close();
      // And back: the rotated state comes home.
      const back = lifecycle(a.config, a.dir, { importFrom: onRedis });
      await back.fetchToken(http);
      assert.equal((await back.status()).registrationsKept, 2);
      assert.equal(await readAgentState(onRedis, a.id), undefined, 'the Redis record was moved aside');
      assert.equal(sandbox.calls('agents.register'), 1, 'never onboarded again');
    });
  });
});

/** The same record store, with each write passed through `intercept` (which calls `write` to do it). */
function withWrites(records: RecordStore, intercept: (write: () => ReturnType<RecordStore['write']>) => ReturnType<RecordStore['write']>): RecordStore {
  return new Proxy(records, {
    get(target, property) {
      if (property === 'write') return (...args: Parameters<RecordStore['write']>) => intercept(() => target.write(...args));
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
