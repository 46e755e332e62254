import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode } from '../../src/core/errors.js';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import { RedisRecordStore } from '../../src/core/redis-record-store.js';
import type { RecordStore } from '../../src/core/record-store.js';
import { SealedRecordStore } from '../../src/core/sealed-record-store.js';
import { agentStores } from '../../src/nodes/agent-store.js';
import type { NodeAPI } from '../../src/nodes/node-red.js';

/** Choosing the agent store from settings.js: the file store by default, Redis when configured, clear errors otherwise. */
describe('agent store settings', () => {
  const userDir = path.join(os.tmpdir(), 'iiot-store-settings');
  const red = (iiotAuth: Record<string, unknown>) => ({ settings: { userDir, iiotAuth }, log: { warn: () => undefined } }) as unknown as NodeAPI;
  /** The store inside the sealing wrapper every agent store has. */
  const inner = (store: RecordStore | undefined) => (store as SealedRecordStore).inner;

  it('files in the user directory by default, nothing to import from', async () => {
    const stores = agentStores(red({}));
    assert.ok(stores.store instanceof SealedRecordStore && inner(stores.store) instanceof FileRecordStore);
    assert.equal(stores.store.where, path.join(userDir, 'iiot-auth', 'agents'));
    assert.equal(stores.importFrom, undefined);
    await stores.release();
  });

  it('Redis when configured, importing from the files; use: "file" moves back; the password never in `where`', async () => {
    process.env.IIOT_TEST_REDIS_PASSWORD = 'pa55-from-env';
    try {
      const settings = { url: 'rediss://:pa55-in-url@redis.example:6380/2', keyPrefix: 'p:', passwordEnv: 'IIOT_TEST_REDIS_PASSWORD' };
      const onRedis = agentStores(red({ agentStore: { redis: settings } }));
      assert.ok(inner(onRedis.store) instanceof RedisRecordStore);
      assert.ok(inner(onRedis.importFrom) instanceof FileRecordStore);
      assert.equal(onRedis.store.where, 'Redis at rediss://redis.example:6380/2');
      const back = agentStores(red({ agentStore: { use: 'file', redis: settings } }));
      assert.ok(inner(back.store) instanceof FileRecordStore);
      assert.strictEqual(inner(back.importFrom), inner(onRedis.store), 'one Redis connection per runtime');
      await onRedis.release();
      await back.release();
    } finally {
      delete process.env.IIOT_TEST_REDIS_PASSWORD;
    }
  });

  it('a misconfiguration is CONFIG_INVALID that says what to fix, never quoting a password', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ redis: { url: 'redis://h:1', passwordEnv: 'IIOT_TEST_NOT_SET' } }, /environment variable IIOT_TEST_NOT_SET .* is not set/],
      [{ redis: {} }, /redis\.url is missing/],
      [{ redis: { url: 'http://:secret-pw@h:1' } }, /must start with redis:\/\/ or rediss:\/\//],
      [{ redis: { url: 'not a url secret-pw' } }, /is not a URL/],
      [{ use: 'redis' }, /iiotAuth\.agentStore\.redis is not set/],
      [{ use: 'disk' }, /write "file" or "redis"/],
    ];
    for (const [agentStore, message] of cases) {
      assert.throws(
        () => agentStores(red({ agentStore })),
        (err: Error & { code: string }) => {
          assert.equal(err.code, ErrorCode.CONFIG_INVALID);
          assert.match(err.message, message);
          assert.doesNotMatch(err.message, /secret-pw/);
          return true;
        },
      );
    }
  });
});
