import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode } from '../../src/core/errors.js';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import { isRecordConflict, type RecordStore } from '../../src/core/record-store.js';
import { RedisRecordStore } from '../../src/core/redis-record-store.js';
import { SealedRecordStore } from '../../src/core/sealed-record-store.js';
import { parseSealingKeys } from '../../src/core/sealing-keys.js';
import { sealedAgentStore } from '../../src/nodes/agent-encryption.js';
import { AGENT_RECORD_WORDS } from '../../src/nodes/agent-store.js';
import { AgentErrorCode } from '../../src/platforms/insights-hub-agent/errors.js';
import { type AgentState, boardingConfigId, readAgentState, writeAgentState } from '../../src/platforms/insights-hub-agent/state.js';
import { RedisServer } from '../helpers/redis-server.js';
import { filesUnder, findSecrets } from '../helpers/secret-search.js';

const KEY1 = randomBytes(32).toString('base64');
const KEY2 = randomBytes(32).toString('hex');
const KEY3 = randomBytes(32).toString('base64');

/** An agent's state with every kind of secret: client secrets, registration access tokens, private keys (stored and pending). */
function agentState(clientId: string): { state: AgentState; secrets: string[] } {
  const secret = () => randomBytes(24).toString('base64url');
  // A key of its own: a store searched for it holds no other test's plain copy.
  const PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const registrations = [1, 2].map((n) => ({
    clientId,
    clientSecret: secret(),
    clientSecretExpiresAt: 2_000_000_000 + n,
    registrationAccessToken: secret(),
    registrationClientUri: `https://southgate.example/api/agentmanagement/v3/register/${clientId}`,
    tokenEndpointAuthMethod: 'client_secret_jwt',
    ...(n === 2 ? { privateKey: PEM, keyId: 'kid-2' } : {}),
    receivedAt: new Date().toISOString(),
    confirmed: n === 1,
  }));
  const pendingKey = { privateKey: `${PEM.slice(0, 40)}pending-${secret()}`, keyId: 'kid-3', createdAt: new Date().toISOString(), purpose: 'rotate' as const };
  const state: AgentState = {
    format: 1,
    clientId,
    tenant: 'tenant1',
    baseUrl: 'https://southgate.example',
    profile: 'SHARED_SECRET',
    boardingConfigId: boardingConfigId('iat'),
    pendingKey,
    registrations,
    updatedAt: '',
  };
  const secrets = [...registrations.flatMap((r) => [r.clientSecret, r.registrationAccessToken]), PEM, pendingKey.privateKey];
  return { state, secrets };
}

describe('sealing keys from settings.js', () => {
  const setting = 'iiotAuth.agentStore.encryption';
  it('takes 32 bytes as base64, base64url or hex, from the settings or an environment variable; ids default to a fingerprint', () => {
    const bytes = randomBytes(32);
    for (const text of [bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex'), bytes.toString('hex').toUpperCase()]) {
      const keys = parseSealingKeys({ key: text }, setting)!;
      assert.ok(keys.current.key.equals(bytes));
      assert.match(keys.current.id, /^key-[0-9a-f]{12}$/);
    }
    const fromEnv = parseSealingKeys({ keyEnv: 'SEAL_KEY' }, setting, { SEAL_KEY: bytes.toString('hex') })!;
    assert.ok(fromEnv.current.key.equals(bytes));
    const rotated = parseSealingKeys({ keys: { current: { id: 'k2', key: KEY2 }, previous: [{ key: bytes.toString('base64') }] } }, setting)!;
    assert.equal(rotated.current.id, 'k2');
    assert.equal(rotated.previous[0]!.id, fromEnv.current.id, 'the key of { key } keeps its id in previous without one');
    assert.equal(parseSealingKeys(undefined, setting), undefined);
  });

  it('anything else is CONFIG_INVALID that says what to write, never quoting the key', () => {
    const cases: [unknown, RegExp][] = [
      [{ key: 'too-short-secret-text' }, /is not a key: it must be 32 random bytes written as base64 \(44 characters\) or hex \(64 characters\); node -e/],
      [{ key: randomBytes(16).toString('hex') }, /is not a key/],
      [{ key: 42 }, /is not a key/],
      [{}, /has no key: write key:/],
      [{ keyEnv: 'IIOT_TEST_NOT_SET' }, /environment variable IIOT_TEST_NOT_SET .* is not set/],
      [{ keyEnv: 'not a name' }, /keyEnv must name an environment variable/],
      [{ key: KEY1, keyEnv: 'X' }, /both "key" and "keyEnv"/],
      [{ key: KEY1, keys: { current: { key: KEY2 } } }, /both "keys" and "key"/],
      [{ keys: { previous: [] } }, /the current key is missing/],
      [{ keys: { current: { key: KEY1 }, previous: {} } }, /previous must be a list/],
      [{ keys: { current: { id: 'k', key: KEY1 }, previous: [{ id: 'k', key: KEY2 }] } }, /two different keys "k"/],
      [{ keys: { current: { id: 'no spaces', key: KEY1 } } }, /\.id must be 1 to 40 letters/],
      ['a key as text', /must be an object/],
    ];
    for (const [value, message] of cases) {
      assert.throws(
        () => parseSealingKeys(value, setting, {}),
        (err: Error & { code: string }) => {
          assert.equal(err.code, ErrorCode.CONFIG_INVALID);
          assert.match(err.message, message);
          assert.doesNotMatch(err.message, /too-short-secret-text/);
          for (const key of [KEY1, KEY2]) assert.ok(!err.message.includes(key));
          return true;
        },
      );
    }
  });
});

for (const kind of ['file', 'redis'] as const) {
  describe(`${kind} store sealed at rest`, function () {
    this.timeout(30_000);
    let redis: RedisServer | undefined;
    let root: string;
    const opened: RecordStore[] = [];
    let n = 0;
    before(async () => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-sealed-'));
      if (kind === 'redis') redis = await RedisServer.start();
    });
    after(async () => {
      await redis?.stop();
      fs.rmSync(root, { recursive: true, force: true });
    });
    afterEach(async () => {
      while (opened.length) await opened.pop()!.close();
    });

    /** A plain store under a prefix of its own (a second one sees the same records). */
    function plain(prefix: string): RecordStore {
      const store =
        kind === 'file'
          ? new FileRecordStore(path.join(root, prefix), AGENT_RECORD_WORDS)
          : new RedisRecordStore({ url: redis!.url, keyPrefix: prefix }, AGENT_RECORD_WORDS);
      opened.push(store);
      return store;
    }
    const sealed = (prefix: string, encryption: unknown): SealedRecordStore => sealedAgentStore(plain(prefix), encryption, AGENT_RECORD_WORDS);

    /** The record's bytes as stored: the file, or the Redis hash's value. */
    async function raw(prefix: string, id: string): Promise<string> {
      if (kind === 'file') return fs.readFileSync(path.join(root, prefix, `${id}.json`), 'utf8');
      const reply = await redis!.command('HGET', `${prefix}record:${id}`, 'value');
      return reply.replace(/^\$\d+\r\n/, '').replace(/\r\n$/, '');
    }
    async function setRaw(prefix: string, id: string, text: string): Promise<void> {
      if (kind === 'file') fs.writeFileSync(path.join(root, prefix, `${id}.json`), text);
      else await redis!.command('HSET', `${prefix}record:${id}`, 'value', text);
    }
    /** Every stored byte: the record, and for Redis its data folder (the AOF) too. */
    async function everything(prefix: string, id: string): Promise<Buffer> {
      const files = kind === 'file' ? filesUnder(path.join(root, prefix)) : filesUnder(redis!.dir);
      return Buffer.concat([Buffer.from(await raw(prefix, id)), ...files.map((f) => f.bytes)]);
    }
    const stateError = (message: RegExp) => (err: Error & { code: string }) => {
      assert.equal(err.code, AgentErrorCode.AGENT_STATE_ERROR);
      assert.match(err.message, message);
      return true;
    };

    it('no secret is stored in any form; the id, version and other fields stay readable; reads give back the secrets', async () => {
      const prefix = `s${++n}:`;
      const store = sealed(prefix, { key: KEY1 });
      const { state, secrets } = agentState('agent1');
      const written = await writeAgentState(store, state, undefined);
      assert.deepEqual(findSecrets(await everything(prefix, 'agent1'), secrets), []);
      const stored = JSON.parse(await raw(prefix, 'agent1')) as Record<string, unknown> & AgentState;
      assert.equal(stored.clientId, 'agent1');
      assert.equal(stored.registrations[0]!.clientSecretExpiresAt, 2_000_000_001);
      assert.equal(stored.registrations[1]!.registrationClientUri, state.registrations[1]!.registrationClientUri);
      assert.equal(SealedRecordStore.sealedWith(stored), store.currentKeyId);
      assert.equal(await plain(prefix).version('agent1'), written.version, 'the version is the store’s own');
      const read = await readAgentState(sealed(prefix, { key: KEY1 }), 'agent1');
      assert.deepEqual(read!.state, written.state);
      // Without the setting, writes are plain and a reader of the store sees every secret.
      const open = sealed(`s${++n}:`, undefined);
      await writeAgentState(open, state, undefined);
      assert.equal(findSecrets(await raw(`s${n}:`, 'agent1'), secrets).length > 0, true);
    });

    it('a new key while the old one still opens: records under both keys read, each re-sealed under the current key with its next write', async () => {
      const prefix = `s${++n}:`;
      const old = sealed(prefix, { keys: { current: { id: 'k1', key: KEY1 } } });
      const a = agentState('agent-a');
      await writeAgentState(old, a.state, undefined);
      const rotated = sealed(prefix, { keys: { current: { id: 'k2', key: KEY2 }, previous: [{ id: 'k1', key: KEY1 }] } });
      const b = agentState('agent-b');
      await writeAgentState(rotated, b.state, undefined);
      assert.equal(SealedRecordStore.sealedWith(JSON.parse(await raw(prefix, 'agent-a'))), 'k1');
      assert.equal(SealedRecordStore.sealedWith(JSON.parse(await raw(prefix, 'agent-b'))), 'k2');
      const readA = (await readAgentState(rotated, 'agent-a'))!;
      assert.deepEqual(readA.state.registrations, a.state.registrations);
      assert.deepEqual((await readAgentState(rotated, 'agent-b'))!.state.registrations, b.state.registrations);
      await writeAgentState(rotated, readA.state, readA.version);
      assert.equal(SealedRecordStore.sealedWith(JSON.parse(await raw(prefix, 'agent-a'))), 'k2', 're-sealed under the current key');
      assert.deepEqual(findSecrets(await everything(prefix, 'agent-a'), [...a.secrets, ...b.secrets]), []);
      // An instance that only knows the old key says which key it lacks.
      await assert.rejects(
        readAgentState(old, 'agent-b'),
        stateError(/encrypted with the key "k2", which iiotAuth\.agentStore\.encryption does not have: add that key/),
      );
    });

    it('wrong key, missing key, unknown key, tampered or truncated values: AGENT_STATE_ERROR naming which, and the record is never overwritten', async () => {
      const prefix = `s${++n}:`;
      const writer = sealed(prefix, { keys: { current: { id: 'k1', key: KEY1 } } });
      const { state } = agentState('agent1');
      await writeAgentState(writer, state, undefined);
      const original = await raw(prefix, 'agent1');
      const record = JSON.parse(original) as Record<string, unknown> & { registrations: Record<string, string>[] };
      const sealedSecret = record.registrations[0]!.clientSecret!;
      const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
      const variants: [string, string, unknown, RegExp][] = [
        ['wrong key', original, { keys: { current: { id: 'k1', key: KEY3 } } }, /encrypted with another key than the one .* names "k1" \(a wrong key\)/],
        ['missing key', original, undefined, /is encrypted \(key "k1"\) but iiotAuth\.agentStore\.encryption is not set/],
        ['unknown key', original, { key: KEY2 }, /encrypted with the key "k1", which .* does not have/],
        [
          'tampered ciphertext',
          original.replace(sealedSecret, flip(sealedSecret, sealedSecret.indexOf('.') + 3)),
          { keys: { current: { id: 'k1', key: KEY1 } } },
          /cannot be decrypted: its field registrations\.0\.clientSecret was changed or cut short/,
        ],
        [
          'truncated value',
          original.replace(sealedSecret, sealedSecret.slice(0, -6)),
          { keys: { current: { id: 'k1', key: KEY1 } } },
          /cannot be decrypted: its field registrations\.0\.clientSecret was changed or cut short/,
        ],
        [
          'value moved from another field',
          original.replace(sealedSecret, record.registrations[0]!.registrationAccessToken!),
          { keys: { current: { id: 'k1', key: KEY1 } } },
          /cannot be decrypted: its field registrations\.0\.clientSecret/,
        ],
        [
          'plain value in a sealed record',
          original.replace(sealedSecret, 'plain-text-secret'),
          { keys: { current: { id: 'k1', key: KEY1 } } },
          /cannot be decrypted: its field registrations\.0\.clientSecret/,
        ],
        ['truncated record', original.slice(0, Math.floor(original.length / 2)), { keys: { current: { id: 'k1', key: KEY1 } } }, /is not valid JSON/],
      ];
      for (const [what, stored, encryption, message] of variants) {
        await setRaw(prefix, 'agent1', stored);
        const reader = sealed(prefix, encryption);
        await assert.rejects(readAgentState(reader, 'agent1'), stateError(message), what);
        // Neither a write that names the version it saw, nor one that expects no record, replaces it.
        const version = await reader.version('agent1');
        await assert.rejects(reader.write('agent1', { ...state }, version), stateError(/./), `${what}: write with the version`);
        await assert.rejects(reader.write('agent1', { ...state }, undefined), (err) => isRecordConflict(err), `${what}: write as new`);
        assert.equal(await raw(prefix, 'agent1'), stored, `${what}: unchanged`);
      }
      // The same record opened with the right key is fine: nothing was lost.
      await setRaw(prefix, 'agent1', original);
      assert.deepEqual((await readAgentState(writer, 'agent1'))!.state.registrations, state.registrations);
    });

    it('a sealed record copied under another id does not open (the id is part of what is sealed)', async () => {
      const prefix = `s${++n}:`;
      const store = sealed(prefix, { key: KEY1 });
      await writeAgentState(store, agentState('agent1').state, undefined);
      await writeAgentState(store, agentState('agent2').state, undefined);
      const one = JSON.parse(await raw(prefix, 'agent1')) as { registrations: Array<{ clientSecret: string }> };
      const two = JSON.parse(await raw(prefix, 'agent2')) as { registrations: Array<{ clientSecret: string }> };
      two.registrations[0]!.clientSecret = one.registrations[0]!.clientSecret;
      await setRaw(prefix, 'agent2', JSON.stringify(two));
      await assert.rejects(readAgentState(store, 'agent2'), stateError(/its field registrations\.0\.clientSecret was changed/));
    });

    it('turning encryption on for a plain store: plain records read as they are, sealed with their next write', async () => {
      const prefix = `s${++n}:`;
      const before = sealed(prefix, undefined);
      const { state, secrets } = agentState('agent1');
      await writeAgentState(before, state, undefined);
      assert.equal(SealedRecordStore.sealedWith(JSON.parse(await raw(prefix, 'agent1'))), undefined, 'plain');
      process.env.IIOT_TEST_SEAL_KEY = KEY1;
      try {
        const now = sealed(prefix, { keyEnv: 'IIOT_TEST_SEAL_KEY' });
        const read = (await readAgentState(now, 'agent1'))!;
        assert.deepEqual(read.state.registrations, state.registrations);
        await writeAgentState(now, { ...read.state, lastRotationAt: new Date().toISOString() }, read.version);
        assert.equal(SealedRecordStore.sealedWith(JSON.parse(await raw(prefix, 'agent1'))), now.currentKeyId);
        assert.deepEqual(findSecrets(await raw(prefix, 'agent1'), secrets), []);
        assert.deepEqual((await readAgentState(now, 'agent1'))!.state.registrations, state.registrations);
      } finally {
        delete process.env.IIOT_TEST_SEAL_KEY;
      }
    });
  });
}
