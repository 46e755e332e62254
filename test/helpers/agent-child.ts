/**
 * A separate process that runs one agent operation and kills itself with
 * SIGKILL at a chosen step: the crash matrix's "the process itself".
 *
 *   node agent-child.js <store> <operation> <crashAt|-> < boarding-config-json
 *
 * <store> is a state directory, or JSON {"redis": {"url", "keyPrefix"}}.
 * Prints one JSON line with the result when it does not crash.
 */
import fs from 'node:fs';
import { HttpClient } from '../../src/core/http/index.js';
import { FileRecordStore } from '../../src/core/file-record-store.js';
import { AGENT_RECORD_WORDS } from '../../src/nodes/agent-store.js';
import { KeyedMutex, type RecordStore } from '../../src/core/record-store.js';
import { RedisRecordStore, type RedisStoreOptions } from '../../src/core/redis-record-store.js';
import { parseBoardingConfiguration } from '../../src/platforms/insights-hub-agent/protocol.js';
import { AgentLifecycle } from '../../src/platforms/insights-hub-agent/lifecycle.js';
import type { SecurityProfile } from '../../src/platforms/insights-hub-agent/state.js';

/** The store a test names: a directory, or Redis. */
export function recordStoreOf(spec: string): RecordStore {
  if (!spec.startsWith('{')) return new FileRecordStore(spec, AGENT_RECORD_WORDS);
  return new RedisRecordStore((JSON.parse(spec) as { redis: RedisStoreOptions }).redis, AGENT_RECORD_WORDS);
}

async function main(): Promise<void> {
  const [storeSpec, operation, crashAt] = process.argv.slice(2);
  const boarding = parseBoardingConfiguration(fs.readFileSync(0, 'utf8'));
  const http = new HttpClient({ timeoutMs: 5000 });
  const records = recordStoreOf(storeSpec!);
  const agent = new AgentLifecycle({
    store: records,
    mutex: new KeyedMutex(),
    boarding,
    profile: (boarding.profiles[0] ?? 'SHARED_SECRET') as SecurityProfile,
    lockStaleMs: 2000,
    onStep: (step) => {
      if (step === crashAt) process.kill(process.pid, 'SIGKILL');
    },
  });
  try {
    if (operation === 'onboard') await agent.onboard(http);
    else if (operation === 'rotate') await agent.rotate(http);
    const token = await agent.fetchToken(http);
    console.log(JSON.stringify({ ok: true, tokenLength: token.value.length }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, code: (err as { code?: string }).code, message: (err as Error).message }));
  } finally {
    await agent.close();
    await records.close();
    await http.close();
  }
}

if (require.main === module) void main();
