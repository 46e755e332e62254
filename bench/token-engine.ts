/**
 * Prints the token engine's figures, measured side by side in one run
 * against the sandbox over loopback HTTP:
 *
 *   1. 1,000 concurrent API calls, cold cache: the shared engine (one token
 *      request) versus fetching a token per call, as a flow without the
 *      engine would. Token requests, wall time, and the ratio.
 *   2. The cost of a cached getToken() call.
 *   3. Memory per cached credential (1,000 credentials).
 *
 * Run: npm run bench. Figures vary with the machine's load; compare the
 * ratios, which are measured under the same conditions.
 */
import { randomBytes } from 'node:crypto';
import { HttpClient } from '../src/core/http/index.js';
import { PlatformConnection, fingerprint } from '../src/core/platform-connection.js';
import { Redactor } from '../src/core/redact.js';
import { TokenEngine } from '../src/core/token-engine.js';
import { InsightsHubAppProvider, validateSettings } from '../src/platforms/insights-hub-app.js';
import { startSandbox } from '../src/sandbox/index.js';

const CALLS = 1000;
const USERS_PATH = '/api/identitymanagement/v3/Users';

async function main(): Promise<void> {
  const memory = await memoryPerCredential();
  const sandbox = await startSandbox();
  const demo = sandbox.demo.insightsHubApp;
  const settings = validateSettings({ gateway: sandbox.url, ...demo }, false);
  const provider = new InsightsHubAppProvider(settings);
  const http = new HttpClient();
  try {
    console.log(`node ${process.version}, ${CALLS} concurrent calls of GET ${USERS_PATH}, sandbox at ${sandbox.url}\n`);

    // 1a. With the shared engine.
    sandbox.resetCalls();
    const engine = new TokenEngine();
    const connection = new PlatformConnection({ id: 'bench', fingerprint: fingerprint({ ...settings }), provider, http, engine, redactor: new Redactor() });
    let started = process.hrtime.bigint();
    let results = await Promise.all(Array.from({ length: CALLS }, () => connection.request({ method: 'GET', url: USERS_PATH })));
    const engineMs = Number(process.hrtime.bigint() - started) / 1e6;
    const engineTokens = sandbox.calls('insightsHub.token');
    const engineOk = results.filter((r) => r.statusCode === 200).length;

    // 1b. A token per call (what a flow does without a shared cache).
    sandbox.resetCalls();
    started = process.hrtime.bigint();
    results = await Promise.all(
      Array.from({ length: CALLS }, async () => {
        const token = await provider.fetchToken(http);
        return http.send({ method: 'GET', url: `${sandbox.url}${USERS_PATH}`, headers: token.headers });
      }),
    );
    const naiveMs = Number(process.hrtime.bigint() - started) / 1e6;
    const naiveTokens = sandbox.calls('insightsHub.token');
    const naiveOk = results.filter((r) => r.statusCode === 200).length;

    console.log('1. cold cache, concurrent calls');
    console.log(`   shared engine:   ${engineTokens} token request(s), ${engineOk}/${CALLS} ok, ${engineMs.toFixed(0)} ms`);
    console.log(`   token per call:  ${naiveTokens} token request(s), ${naiveOk}/${CALLS} ok, ${naiveMs.toFixed(0)} ms`);
    console.log(`   ratio:           ${(naiveTokens / engineTokens).toFixed(0)}x fewer token requests, ${(naiveMs / engineMs).toFixed(2)}x faster\n`);

    // 2. Cached lookups.
    const lookups = 1_000_000;
    started = process.hrtime.bigint();
    for (let i = 0; i < lookups; i++) await connection.getToken();
    const perLookupNs = Number(process.hrtime.bigint() - started) / lookups;
    console.log('2. cached getToken()');
    console.log(`   ${perLookupNs.toFixed(0)} ns per call (${lookups} calls)\n`);

    console.log('3. memory');
    console.log(memory);
    await connection.close(true);
  } finally {
    await http.close();
    await sandbox.stop();
  }
}

async function memoryPerCredential(): Promise<string> {
  // Measured first, before network work leaves garbage behind, as the growth
  // of the collected heap while the cache fills (reading it after dropping the
  // engine was unreliable: the heap did not always shrink at once, and the
  // figure came out as 0).
  const credentials = 10_000;
  global.gc?.();
  const before = process.memoryUsage().heapUsed;
  const memoryEngine = new TokenEngine();
  const now = Date.now();
  for (let i = 0; i < credentials; i++) {
    const value = randomBytes(675).toString('base64url'); // a unique, JWT-sized (900 characters) token
    await memoryEngine.credential(`cred-${i}`, `fp-${i}`).get(async () => ({
      type: 'bearer',
      value,
      obtainedAt: now,
      expiresAt: now + 1_800_000,
      headers: { authorization: `Bearer ${value}` },
    }));
  }
  global.gc?.();
  const perCredential = (process.memoryUsage().heapUsed - before) / credentials;
  const cached = memoryEngine.credential(`cred-${credentials - 1}`, `fp-${credentials - 1}`).peek() ? credentials : 0; // keeps the engine alive until measured
  return `   ~${(perCredential / 1024).toFixed(1)} KiB heap per cached credential (${cached} credentials, 900-character tokens${global.gc ? '' : '; run with --expose-gc for real figures'})`;
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
