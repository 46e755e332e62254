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

  it('Sentinel when sentinels and name are set: the store names them, never a password, and waits for one replica by default', async () => {
    process.env.IIOT_TEST_SENTINEL_PASSWORD = 'sentinel-pa55';
    try {
      const redis = {
        sentinels: [
          { host: '10.0.0.5', port: 26379 },
          { host: '10.0.0.6', port: 26379 },
        ],
        name: 'mymaster',
        sentinelPasswordEnv: 'IIOT_TEST_SENTINEL_PASSWORD',
      };
      const stores = agentStores(red({ agentStore: { redis } }));
      assert.ok(inner(stores.store) instanceof RedisRecordStore);
      assert.equal(stores.store.where, 'Redis Sentinel "mymaster" at 10.0.0.5:26379, 10.0.0.6:26379');
      assert.equal(stores.store.minReplicas, 1);
      await stores.release();
      const none = agentStores(red({ agentStore: { redis: { ...redis, minReplicas: 0 } } }));
      assert.equal(none.store.minReplicas, 0);
      await none.release();
      const plain = agentStores(red({ agentStore: { redis: { url: 'redis://h:1' } } }));
      assert.equal(plain.store.minReplicas, 0, 'a single server has no replicas to wait for by default');
      await plain.release();
    } finally {
      delete process.env.IIOT_TEST_SENTINEL_PASSWORD;
    }
  });

  it('a misconfiguration is CONFIG_INVALID that says what to fix, never quoting a password', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ redis: { url: 'redis://h:1', passwordEnv: 'IIOT_TEST_NOT_SET' } }, /environment variable IIOT_TEST_NOT_SET .* is not set/],
      [{ redis: {} }, /redis\.url is missing/],
      [{ redis: { url: 'http://:secret-pw@h:1' } }, /must start with redis:\/\/ or rediss:\/\//],
      [{ redis: { url: 'not a url secret-pw' } }, /is not a URL/],
      [{ use: 'redis' }, /iiotAuth\.agentStore\.redis is not set/],
      [{ redis: { sentinels: [{ host: 'h', port: 26379 }] } }, /redis\.name is missing: the master group's name/],
      [{ redis: { name: 'mymaster' } }, /redis\.sentinels must list the Sentinels as \[\{ host: "10\.0\.0\.5", port: 26379 \}/],
      [{ redis: { name: 'mymaster', sentinels: [{ host: 'h', port: 'x' }] } }, /redis\.sentinels must list the Sentinels/],
      [{ redis: { name: 'm', sentinels: [{ host: 'h', port: 1 }], url: 'redis://:secret-pw@h:1' } }, /has both url and sentinels: keep one/],
      [
        { redis: { name: 'm', sentinels: [{ host: 'h', port: 1 }], sentinelPasswordEnv: 'IIOT_TEST_NOT_SET' } },
        /IIOT_TEST_NOT_SET \(iiotAuth\.agentStore\.redis\.sentinelPasswordEnv\) is not set/,
      ],
      [{ redis: { url: 'redis://h:1', minReplicas: -1 } }, /minReplicas must be a whole number, 0 or more/],
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
