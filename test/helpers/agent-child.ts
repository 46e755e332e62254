/**
 * A separate process that runs one agent operation and kills itself with
 * SIGKILL at a chosen step: the crash matrix's "the process itself".
 *
 *   node agent-child.js <stateDir> <operation> <crashAt|-> < boarding-config-json
 *
 * Prints one JSON line with the result when it does not crash.
 */
import fs from 'node:fs';
import { AgentStateStore, KeyedMutex, type SecurityProfile } from '../../src/core/agent-state.js';
import { HttpClient } from '../../src/core/http.js';
import { parseBoardingConfiguration } from '../../src/platforms/insights-hub-agent.js';
import { AgentLifecycle } from '../../src/platforms/insights-hub-agent-lifecycle.js';

async function main(): Promise<void> {
  const [stateDir, operation, crashAt] = process.argv.slice(2);
  const boarding = parseBoardingConfiguration(fs.readFileSync(0, 'utf8'));
  const http = new HttpClient({ timeoutMs: 5000 });
  const agent = new AgentLifecycle({
    store: new AgentStateStore(stateDir!),
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
    await http.close();
  }
}

void main();
