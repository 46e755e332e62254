import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import { RedisRecordStore } from '../../src/core/redis-record-store.js';
import { SealedRecordStore } from '../../src/core/sealed-record-store.js';
import { sealedAgentStore } from '../../src/nodes/agent-encryption.js';
import { AGENT_RECORD_WORDS } from '../../src/nodes/agent-store.js';
import { type AgentState, boardingConfigId, readAgentState, writeAgentState } from '../../src/platforms/insights-hub-agent/state.js';
import { RedisServer } from '../helpers/redis-server.js';
import { filesUnder, findSecrets } from '../helpers/secret-search.js';

const root = path.resolve(__dirname, '..', '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
const BIN = path.join(root, pkg.bin['iiot-auth-agents'] as string);

const K1 = randomBytes(32).toString('base64');
const K2 = randomBytes(32).toString('hex');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built command, as a child process. */
function agents(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function agentState(clientId: string, profile: AgentState['profile'] = 'SHARED_SECRET'): { state: AgentState; secrets: string[] } {
  const secret = () => randomBytes(24).toString('base64url');
  const registration = {
    clientId,
    clientSecret: secret(),
    clientSecretExpiresAt: 2_000_000_000,
    registrationAccessToken: secret(),
    registrationClientUri: `https://southgate.example/api/agentmanagement/v3/register/${clientId}`,
    tokenEndpointAuthMethod: 'client_secret_jwt',
    receivedAt: new Date().toISOString(),
    confirmed: true,
  };
  const state: AgentState = {
    format: 1,
    clientId,
    tenant: 'tenant1',
    baseUrl: 'https://southgate.example',
    profile,
    boardingConfigId: boardingConfigId(`iat-${clientId}`),
    registrations: [registration],
    updatedAt: '',
  };
  return { state, secrets: [registration.clientSecret, registration.registrationAccessToken] };
}

/** `iiot-auth-agents` against a file store and a real Redis, configured by a settings.js as Node-RED's. */
describe('iiot-auth-agents (the built command)', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let dir: string;
  let settingsFile: string;
  const stateDir = () => path.join(dir, 'agents');
  const prefix = 'cli:';
  const secrets: string[] = [];
  const closing: Array<{ close(): Promise<void> }> = [];

  /** Writes settings.js with the given encryption setting (the Redis store configured, agents on files unless `use` says otherwise). */
  function settings(encryption: unknown, use: 'file' | 'redis' = 'file'): void {
    const iiotAuth = { agentStateDir: stateDir(), agentStore: { use, redis: { url: redis.url, keyPrefix: prefix }, encryption } };
    fs.writeFileSync(settingsFile, `module.exports = { uiPort: 1880, iiotAuth: ${JSON.stringify(iiotAuth)} };\n`);
  }
  const fileStore = (encryption: unknown) => sealedAgentStore(new FileRecordStore(stateDir(), AGENT_RECORD_WORDS), encryption, AGENT_RECORD_WORDS);
  const redisStore = (encryption: unknown) => {
    const store = sealedAgentStore(new RedisRecordStore({ url: redis.url, keyPrefix: prefix }, AGENT_RECORD_WORDS), encryption, AGENT_RECORD_WORDS);
    closing.push(store);
    return store;
  };
  const fileText = (id: string) => fs.readFileSync(path.join(stateDir(), `${id}.json`), 'utf8');
  const redisText = async (id: string) => (await redis.command('HGET', `${prefix}record:${id}`, 'value')).replace(/^\$\d+\r\n/, '');
  const sealedWith = (text: string) => SealedRecordStore.sealedWith(JSON.parse(text) as Record<string, unknown>) ?? 'plain';
  const noSecretsIn = (bytes: Buffer | string, what: string) => assert.deepEqual(findSecrets(bytes, secrets), [], what);

  before(async () => {
    redis = await RedisServer.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-agents-cli-'));
    settingsFile = path.join(dir, 'settings.js');
    // Two agents on files: one sealed under k1, one written before encryption was turned on.
    const a = agentState('agent-a');
    const b = agentState('agent-b', 'RSA_3072');
    secrets.push(...a.secrets, ...b.secrets);
    await writeAgentState(fileStore({ keys: { current: { id: 'k1', key: K1 } } }), a.state, undefined);
    await writeAgentState(fileStore(undefined), b.state, undefined);
  });
  after(async () => {
    for (const store of closing) await store.close();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--help, and wrong arguments or settings: exit 2 with what to do, nothing done', async () => {
    const help = await agents('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: iiot-auth-agents <command>[\s\S]*list[\s\S]*reseal[\s\S]*copy --from/);
    const cases: [string[], RegExp][] = [
      [[], /no command: give list, reseal or copy/],
      [['rotate'], /unknown command "rotate"/],
      [['copy', '--from', 'file'], /copy needs --from and --to/],
      [['copy', '--from', 'file', '--to', 'file'], /both file/],
      [['list', '--store', 'disk'], /--store is "disk": write file or redis/],
      [['list', '--settings', path.join(dir, 'missing.js')], /no settings file at .*missing\.js: give --settings/],
    ];
    for (const [args, message] of cases) {
      const result = await agents(...args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message);
    }
    settings({ key: 'not-a-key' });
    const bad = await agents('list', '--settings', settingsFile);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /CONFIG_INVALID: iiotAuth\.agentStore\.encryption\.key is not a key: it must be 32 random bytes/);
    assert.doesNotMatch(bad.stderr, /not-a-key/);
  });

  it('list: every agent with its readable fields and the key it is sealed with, no secret', async () => {
    settings({ keys: { current: { id: 'k1', key: K1 } } });
    const table = await agents('list', '--settings', settingsFile);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /client id\s+onboarded\s+profile\s+secret expires\s+sealed with/);
    assert.match(table.stdout, /agent-a\s+yes\s+SHARED_SECRET\s+2033-05-18T03:33:20.000Z\s+k1/);
    assert.match(table.stdout, /agent-b\s+yes\s+RSA_3072\s+2033-05-18T03:33:20.000Z\s+plain/);
    const json = await agents('list', '--json', '--settings', settingsFile);
    const rows = JSON.parse(json.stdout) as Array<{ clientId: string; sealedWith: string; onboarded: boolean }>;
    assert.deepEqual(
      rows.map((r) => [r.clientId, r.sealedWith, r.onboarded]),
      [
        ['agent-a', 'k1', true],
        ['agent-b', 'plain', true],
      ],
    );
    // --userDir finds the settings.js in it, as Node-RED does.
    const byUserDir = await agents('list', '--json', '--userDir', dir);
    assert.deepEqual(JSON.parse(byUserDir.stdout), rows);
    // Listing reads nothing secret: it works without the key too.
    settings(undefined);
    const keyless = await agents('list', '--json', '--settings', settingsFile);
    assert.equal(keyless.code, 0, keyless.stderr);
    noSecretsIn(table.stdout + table.stderr + json.stdout + keyless.stdout + keyless.stderr, 'list output');
  });

  it('reseal: plain records and those under an older key are sealed under the current key; counts reported; an agent in use, or one that cannot be opened, fails alone and stays as it is', async () => {
    settings({ keys: { current: { id: 'k2', key: K2 }, previous: [{ id: 'k1', key: K1 }] } });
    // A Node-RED still using agent-b (its lock file, held by this process): that agent is reported and left alone.
    const plainB = fileText('agent-b');
    const release = await new FileRecordStore(stateDir(), AGENT_RECORD_WORDS).claim('agent-b', { staleMs: 10_000 });
    let busy: Result;
    try {
      busy = await agents('reseal', '--settings', settingsFile);
    } finally {
      await release();
    }
    assert.equal(busy.code, 1);
    assert.match(busy.stdout, /reseal .*agents: 1 resealed, 0 already current, 1 failed/);
    assert.match(busy.stderr, /agent-b: AGENT_LOCKED: agent agent-b is in use by another Node-RED process/);
    assert.equal(fileText('agent-b'), plainB, 'left as it was');
    const first = await agents('reseal', '--settings', settingsFile);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /reseal .*agents: 1 resealed, 1 already current, 0 failed/);
    assert.equal(sealedWith(fileText('agent-a')), 'k2');
    assert.equal(sealedWith(fileText('agent-b')), 'k2');
    noSecretsIn(Buffer.concat(filesUnder(stateDir()).map((f) => f.bytes)), 'state folder after reseal');
    const again = await agents('reseal', '--settings', settingsFile);
    assert.match(again.stdout, /0 resealed, 2 already current, 0 failed/);
    // Without the key its records were sealed with, an agent is reported and left alone.
    const kept = fileText('agent-a');
    settings({ keys: { current: { id: 'k3', key: K1 } } });
    const refused = await agents('reseal', '--settings', settingsFile);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /0 resealed, 0 already current, 2 failed/);
    assert.match(
      refused.stderr,
      /agent-a: AGENT_STATE_ERROR: the stored state of agent-a .* is encrypted with the key "k2", which .* does not have: add that key/,
    );
    assert.equal(fileText('agent-a'), kept);
    // The agents still open with the keys they were sealed with.
    const read = await readAgentState(fileStore({ keys: { current: { id: 'k2', key: K2 } } }), 'agent-b');
    assert.equal(read!.state.profile, 'RSA_3072');
  });

  it('copy file → redis, then redis → file: sealed as configured, a newer record never overwritten, the source left as it was', async () => {
    const encryption = { keys: { current: { id: 'k2', key: K2 }, previous: [{ id: 'k1', key: K1 }] } };
    settings(encryption);
    const filesBefore = [fileText('agent-a'), fileText('agent-b')];
    const toRedis = await agents('copy', '--from', 'file', '--to', 'redis', '--settings', settingsFile);
    assert.equal(toRedis.code, 0, toRedis.stderr);
    assert.match(toRedis.stdout, /copy .*agents to Redis at redis:\/\/127\.0\.0\.1:\d+: 2 copied, 0 kept \(the target is as new or newer\), 0 failed/);
    assert.deepEqual([fileText('agent-a'), fileText('agent-b')], filesBefore, 'the source is unchanged');
    for (const id of ['agent-a', 'agent-b']) assert.equal(sealedWith(await redisText(id)), 'k2');
    noSecretsIn(
      Buffer.concat([Buffer.from((await redisText('agent-a')) + (await redisText('agent-b'))), ...filesUnder(redis.dir).map((f) => f.bytes)]),
      'Redis',
    );
    const onRedis = redisStore(encryption);
    const fromFile = await readAgentState(fileStore(encryption), 'agent-a');
    assert.deepEqual((await readAgentState(onRedis, 'agent-a'))!.state, fromFile!.state);
    const twice = await agents('copy', '--from', 'file', '--to', 'redis', '--settings', settingsFile);
    assert.match(twice.stdout, /0 copied, 2 kept/);

    // Agent a goes on on Redis (Node-RED moved there), agent b on files: each newer copy wins, the other is kept.
    const a = (await readAgentState(onRedis, 'agent-a'))!;
    const rotatedA = await writeAgentState(onRedis, { ...a.state, lastRotationAt: new Date().toISOString() }, a.version);
    const b = (await readAgentState(fileStore(encryption), 'agent-b'))!;
    await writeAgentState(fileStore(encryption), { ...b.state, lastRotationAt: new Date().toISOString() }, b.version);
    const newerB = fileText('agent-b');
    const redisBefore = await redisText('agent-b');
    settings(encryption, 'redis');
    const toFile = await agents('copy', '--from', 'redis', '--to', 'file', '--settings', settingsFile);
    assert.equal(toFile.code, 0, toFile.stderr);
    assert.match(toFile.stdout, /1 copied, 1 kept \(the target is as new or newer\), 0 failed/);
    assert.deepEqual((await readAgentState(fileStore(encryption), 'agent-a'))!.state, rotatedA.state, 'the newer Redis copy of a is on file now');
    assert.equal(fileText('agent-b'), newerB, 'the newer file of b is not overwritten');
    assert.equal(await redisText('agent-b'), redisBefore, 'the source is unchanged');
    noSecretsIn(Buffer.concat(filesUnder(stateDir()).map((f) => f.bytes)), 'state folder after copy');
    noSecretsIn(toRedis.stdout + toRedis.stderr + toFile.stdout + toFile.stderr, 'copy output');
    // The store Node-RED uses (redis here) is what list shows by default.
    const listed = JSON.parse((await agents('list', '--json', '--settings', settingsFile)).stdout) as Array<{ clientId: string }>;
    assert.deepEqual(
      listed.map((r) => r.clientId),
      ['agent-a', 'agent-b'],
    );
  });
});
