/**
 * `npm run soak [-- --minutes N]`: a real Node-RED runtime (the one in
 * node_modules) with every platform's config node and an authenticated
 * request, against the sandbox with 5-second token lifetimes and random
 * faults at 5 % of the requests of every endpoint; a full redeploy every
 * minute and new config nodes (a config change) every three minutes.
 * Messages come in over HTTP (http in → iiot-request → http response; a
 * Catch node answers 599 with the error code). A control flow does the same
 * with a core http request node, so what Node-RED itself drops while it
 * replaces flows shows apart from what our nodes do.
 *
 * The Insights Hub agent is one of the platforms: an agent created in the
 * sandbox, onboarded on first use with its boarding configuration, its state
 * in a temporary directory, and a client secret short-lived enough that it
 * rotates every 20 seconds or so. New config nodes keep the agent (same
 * boarding configuration, as when a user replaces the config node of a
 * device that stays): it must be onboarded once in the whole soak.
 *
 * Prints per platform messages in, out, caught and lost; token requests
 * against the lifetimes; the agent's onboardings and rotations; heap after
 * GC and open fds of the runtime per minute; and whether any secret reached
 * its log. Not part of CI.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import type { EndpointName, Fault, Sandbox } from '../src/sandbox/index.js';
import { startSandbox } from '../src/sandbox/index.js';
import { NodeRedProcess } from '../test/helpers/node-red-process.js';
import { agentCase, PLATFORM_CASES, type PlatformCase } from '../test/helpers/platform-flows.js';

const args = process.argv.slice(2);
const minutesArg = args.find((a) => a.startsWith('--minutes'));
const MINUTES = Number(minutesArg?.includes('=') ? minutesArg.split('=')[1] : minutesArg ? args[args.indexOf(minutesArg) + 1] : 10) || 10;
const DURATION_MS = MINUTES * 60_000;
const LIFETIME_S = 5;
/** The agent's client secret: rotated when 25–35 % of it is left, so every 20 s or so. */
const AGENT_SECRET_S = 30;
const FAULT_RATE = 0.05;
/** SOAK_REDEPLOY_S shortens the minute between redeploys, for a quick check of the soak itself. */
const REDEPLOY_MS = (Number(process.env.SOAK_REDEPLOY_S) || 60) * 1000;
const CHANGE_EVERY = 3; // every third redeploy changes the config nodes
const IN_FLIGHT = 3; // per platform
/** A message lost within this long after a redeploy overlapped the flow being replaced. */
const REPLACE_WINDOW_MS = 3_000;

const FAULTS: Fault[] = [
  { kind: 'status', status: 500 },
  { kind: 'status', status: 503, headers: { 'retry-after': '1' } },
  { kind: 'delay', ms: 1500 },
  { kind: 'dropResponse' },
  { kind: 'refuse' },
];

interface Tally {
  in: number;
  out: number;
  caught: number;
  lost: number;
  droppedByNodeRed: number;
  codes: Record<string, number>;
  closedAfterUnchanged: number;
}

const newTally = (): Tally => ({ in: 0, out: 0, caught: 0, lost: 0, droppedByNodeRed: 0, codes: {}, closedAfterUnchanged: 0 });

function flows(sandbox: Sandbox, cases: PlatformCase[], generation: number): { nodes: Record<string, unknown>[] } {
  const nodes: Record<string, unknown>[] = [{ id: 'soak', type: 'tab', label: 'soak' }];
  const respond = (id: string) => ({ id, type: 'http response', z: 'soak', wires: [] });
  const tidy = (id: string, next: string) => ({
    id,
    type: 'change',
    z: 'soak',
    rules: [
      { t: 'delete', p: 'headers', pt: 'msg' },
      { t: 'set', p: 'payload', pt: 'msg', to: '', tot: 'str' },
    ],
    wires: [[next]],
  });
  const caught = (id: string, scope: string, next: string) => [
    { id, type: 'catch', z: 'soak', scope: [scope], uncaught: false, wires: [[`${id}-set`]] },
    {
      id: `${id}-set`,
      type: 'change',
      z: 'soak',
      rules: [
        { t: 'delete', p: 'headers', pt: 'msg' },
        { t: 'set', p: 'statusCode', pt: 'msg', to: '599', tot: 'num' },
        { t: 'set', p: 'payload', pt: 'msg', to: 'error.code', tot: 'msg' },
      ],
      wires: [[next]],
    },
  ];
  for (const c of cases) {
    const p = c.platform;
    // A config change: every CHANGE_EVERY redeploys, new config nodes (the old ones are deleted).
    const config = `cfg-${p}-${Math.floor(generation / CHANGE_EVERY)}`;
    nodes.push({ id: config, type: c.configType, ...c.config(sandbox), credentials: c.credentials(sandbox) });
    nodes.push({ id: `in-${p}`, type: 'http in', z: 'soak', url: `/soak/${p}`, method: 'post', wires: [[`req-${p}`]] });
    nodes.push({
      id: `req-${p}`,
      type: 'iiot-request',
      z: 'soak',
      platform: p,
      [c.property]: config,
      method: 'GET',
      url: c.apiPath,
      ret: 'obj',
      wires: [[`tidy-${p}`]],
    });
    nodes.push(tidy(`tidy-${p}`, `res-${p}`), respond(`res-${p}`), ...caught(`catch-${p}`, `req-${p}`, `res-${p}`));
  }
  // The control: the same shape with a core http request node.
  nodes.push({ id: 'in-control', type: 'http in', z: 'soak', url: '/soak/control', method: 'post', wires: [['req-control']] });
  nodes.push({
    id: 'req-control',
    type: 'http request',
    z: 'soak',
    method: 'GET',
    ret: 'txt',
    url: `${sandbox.url}/__sandbox/echo/soak`,
    paytoqs: 'ignore',
    wires: [['tidy-control']],
  });
  nodes.push(tidy('tidy-control', 'res-control'), respond('res-control'), ...caught('catch-control', 'req-control', 'res-control'));
  // The runtime's own figures: heap after GC, open file descriptors.
  nodes.push({ id: 'in-stats', type: 'http in', z: 'soak', url: '/soak/stats', method: 'get', wires: [['fn-stats']] });
  nodes.push({
    id: 'fn-stats',
    type: 'function',
    z: 'soak',
    func: "v8.setFlagsFromString('--expose-gc'); const gc = vm.runInNewContext('gc'); gc(); gc(); msg.payload = { heap: v8.getHeapStatistics().used_heap_size, fds: fs.readdirSync('/proc/self/fd').length }; return msg;",
    libs: [
      { var: 'v8', module: 'v8' },
      { var: 'vm', module: 'vm' },
      { var: 'fs', module: 'fs' },
    ],
    outputs: 1,
    wires: [['res-stats']],
  });
  nodes.push(respond('res-stats'));
  return { nodes };
}

/** Random faults at about FAULT_RATE of each endpoint's requests: counted every 100 ms, set for the next ones. */
function faultInjector(sandbox: Sandbox, endpoints: EndpointName[]): { stop(): void; injected: () => number } {
  const seen = new Map<EndpointName, number>(endpoints.map((e) => [e, sandbox.calls(e)]));
  const owed = new Map<EndpointName, number>(endpoints.map((e) => [e, 0]));
  let injected = 0;
  const timer = setInterval(() => {
    for (const e of endpoints) {
      const calls = sandbox.calls(e);
      const fresh = calls - (seen.get(e) ?? calls);
      seen.set(e, calls);
      let debt = (owed.get(e) ?? 0) + fresh * FAULT_RATE;
      // Spread: not every 20th request, but each with a chance.
      if (debt >= 1 || Math.random() < debt) {
        const times = Math.max(1, Math.floor(debt));
        sandbox.fault(e, { ...FAULTS[Math.floor(Math.random() * FAULTS.length)], times });
        injected += times;
        debt -= times;
      }
      owed.set(e, debt);
    }
  }, 100);
  return { stop: () => clearInterval(timer), injected: () => injected };
}

/** The agent's client secrets and registration access tokens in its state files, to search the log for: they change with every rotation. */
function agentSecretsIn(stateDir: string, into: Set<string>): void {
  for (const file of fs.readdirSync(stateDir).filter((f) => f.endsWith('.json'))) {
    try {
      const state = JSON.parse(fs.readFileSync(path.join(stateDir, file), 'utf8')) as {
        registrations?: Array<{ clientSecret?: string; registrationAccessToken?: string }>;
      };
      for (const r of state.registrations ?? []) for (const secret of [r.clientSecret, r.registrationAccessToken]) if (secret) into.add(secret);
    } catch {
      // being written: read again next time
    }
  }
}

async function main(): Promise<void> {
  const sandbox = await startSandbox({
    lifetimes: {
      insightsHubAppToken: LIFETIME_S,
      ciscoEiAccessToken: LIFETIME_S,
      ciscoEiRefreshToken: 3 * LIFETIME_S,
      dataTrailsToken: LIFETIME_S,
      mbpSession: LIFETIME_S,
      mbpCookie: LIFETIME_S,
      oauth2Token: LIFETIME_S,
      agentToken: LIFETIME_S,
      agentClientSecret: AGENT_SECRET_S,
    },
  });
  const agent = agentCase(sandbox);
  const cases = [...PLATFORM_CASES, agent];
  const agentStateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-soak-agents-'));
  const agentSecrets = new Set<string>();
  const red = await NodeRedProcess.start({
    functionExternalModules: true,
    iiotAuth: { backoffInitialMs: 500, backoffMaxMs: 4000, requestTimeoutMs: 20_000, agentStateDir },
    logging: { console: { level: 'warn' } },
  }).catch((err: Error) => {
    fs.rmSync(agentStateDir, { recursive: true, force: true });
    throw err;
  });
  const started = Date.now();
  const until = started + DURATION_MS;
  const redeploys: Array<{ at: number; done: number; changed: boolean }> = [];
  const tallies = new Map<string, Tally>([...cases.map((c) => [c.platform, newTally()] as const), ['control (core http request)', newTally()]]);
  const tokenEndpoints = cases.map((c) => c.tokenEndpoint);
  const tokensAtStart = new Map(tokenEndpoints.map((e) => [e, sandbox.calls(e)]));
  const perMinute: string[] = [];
  let generation = 0;
  try {
    await red.deploy(flows(sandbox, cases, generation).nodes);
    // Not agents.register: it is called once, so a fault there would only be counted, never met.
    const faults = faultInjector(sandbox, [...tokenEndpoints, ...cases.map((c) => c.apiEndpoint), 'agents.rotate', 'sandbox.echo']);
    const agentSecretWatch = setInterval(() => agentSecretsIn(agentStateDir, agentSecrets), 2000);
    console.log(
      `soak: ${MINUTES} min, Node-RED at ${red.base}, sandbox at ${sandbox.url}, ${LIFETIME_S} s token lifetimes (agent client secret ${AGENT_SECRET_S} s), ${FAULT_RATE * 100} % faults, redeploy every ${REDEPLOY_MS / 1000} s, new config nodes every ${CHANGE_EVERY} redeploys\n`,
    );

    const inRedeployWindow = (from: number, to: number) => redeploys.some((r) => from <= r.done + REPLACE_WINDOW_MS && to >= r.at);
    const afterUnchangedRedeploy = (from: number) => redeploys.some((r) => !r.changed && from >= r.done && from <= r.done + 5_000);

    const loop = async (name: string, path: string) => {
      const tally = tallies.get(name);
      if (!tally) throw new Error(`no tally for ${name}`);
      while (Date.now() < until) {
        const from = Date.now();
        tally.in++;
        try {
          const res = await request(`${red.base}${path}`, {
            method: 'POST',
            body: '{}',
            headers: { 'content-type': 'application/json' },
            headersTimeout: 10_000,
            bodyTimeout: 10_000,
          });
          const text = await res.body.text();
          if (res.statusCode === 599) {
            tally.caught++;
            const code = text.replace(/"/g, '') || 'unknown';
            tally.codes[code] = (tally.codes[code] ?? 0) + 1;
            if (code === 'CLOSED' && afterUnchangedRedeploy(from)) tally.closedAfterUnchanged++;
          } else if (res.statusCode === 404 && inRedeployWindow(from, Date.now())) {
            tally.droppedByNodeRed++; // no route: the flow was being replaced
          } else tally.out++;
        } catch {
          if (inRedeployWindow(from, Date.now())) tally.droppedByNodeRed++;
          else tally.lost++;
        }
      }
    };
    const loops: Promise<void>[] = [];
    for (const c of cases) for (let i = 0; i < IN_FLIGHT; i++) loops.push(loop(c.platform, `/soak/${c.platform}`));
    for (let i = 0; i < IN_FLIGHT; i++) loops.push(loop('control (core http request)', '/soak/control'));

    const stats = async () => {
      try {
        const res = await request(`${red.base}/soak/stats`, { headersTimeout: 10_000 });
        return (await res.body.json()) as { heap: number; fds: number };
      } catch (err) {
        console.log(`(no figures from the runtime: ${(err as Error).message}; its log ends:\n${red.output.slice(-1500)})`);
        return undefined;
      }
    };
    const driver = (async () => {
      let minute = 0;
      while (Date.now() < until) {
        const next = started + (minute + 1) * REDEPLOY_MS;
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(next, until) - Date.now())));
        minute++;
        const s = await stats();
        const line = `${REDEPLOY_MS === 60_000 ? 'minute' : 'period'} ${String(minute).padStart(2)}: heap ${s ? (s.heap / 1048576).toFixed(1) : '?'} MiB after GC, ${s?.fds ?? '?'} fds, ${[...tallies.values()].reduce((n, t) => n + t.in, 0)} messages so far`;
        perMinute.push(line);
        console.log(line);
        if (Date.now() >= until) break;
        generation++;
        const changed = generation % CHANGE_EVERY === 0;
        const at = Date.now();
        await red.deploy(flows(sandbox, cases, generation).nodes);
        redeploys.push({ at, done: Date.now(), changed });
      }
    })();
    await Promise.all([...loops, driver]);
    faults.stop();
    clearInterval(agentSecretWatch);
    sandbox.clearFaults();

    const seconds = (Date.now() - started) / 1000;
    console.log(
      `\n${redeploys.length} full redeploys (${redeploys.filter((r) => r.changed).length} with new config nodes), ${faults.injected()} faults injected, ${seconds.toFixed(0)} s\n`,
    );
    console.log('| platform | in | out | caught | lost | dropped by Node-RED while replacing flows | CLOSED after an unchanged redeploy | caught by code |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const [name, t] of tallies) {
      const codes = Object.entries(t.codes)
        .map(([code, n]) => `${code} ${n}`)
        .join(', ');
      console.log(`| ${name} | ${t.in} | ${t.out} | ${t.caught} | ${t.lost} | ${t.droppedByNodeRed} | ${t.closedAfterUnchanged} | ${codes} |`);
    }
    console.log('\ntoken requests against lifetimes (renewal at 75–85 % of 5 s; new config nodes and 401s after faults add some)');
    const configs = 1 + redeploys.filter((r) => r.changed).length;
    for (const c of cases) {
      const made = sandbox.calls(c.tokenEndpoint) - (tokensAtStart.get(c.tokenEndpoint) ?? 0);
      const low = Math.floor(seconds / LIFETIME_S);
      const high = Math.ceil(seconds / (LIFETIME_S * 0.75)) + configs;
      console.log(`   ${c.platform}: ${made} token requests; ${low}–${high} expected`);
    }
    // A rotation waits for the first token request after its point (25–35 % of the secret's life left).
    const status = sandbox.agents.status(agent.agentId);
    const rotationsLow = Math.floor(seconds / (AGENT_SECRET_S * 0.75 + LIFETIME_S));
    const rotationsHigh = Math.ceil(seconds / (AGENT_SECRET_S * 0.65));
    console.log(
      `\ninsights-hub-agent: ${sandbox.calls('agents.register')} register calls (1 expected: onboarded once, kept through every redeploy and new config nodes); ` +
        `${sandbox.calls('agents.rotate')} rotate calls, ${status.registrations - 1} rotations issued (${rotationsLow}–${rotationsHigh} expected for a ${AGENT_SECRET_S} s client secret), boarding status ${status.boarding}`,
    );
  } finally {
    // The soak's result is reported already; a failed stop ends with the process.
    await red.stop().catch(() => undefined);
    agentSecretsIn(agentStateDir, agentSecrets);
    fs.rmSync(agentStateDir, { recursive: true, force: true });
    const secrets = [...cases.flatMap((c: PlatformCase) => c.secrets(sandbox)), ...agentSecrets];
    const leaks = secrets.filter((s) => red.output.includes(s)).length;
    console.log(
      `\nsecrets in the runtime's log: ${leaks} of ${secrets.length} searched (${agentSecrets.size} of them the agent's); log lines: ${red.output.split('\n').length}`,
    );
    await sandbox.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
