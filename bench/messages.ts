// biome-ignore-all lint/suspicious/noExplicitAny: the test helper and the bench server's IPC messages are untyped; the bench reads them loosely
/**
 * Messages per second through Node-RED, side by side in one run, against one
 * small JSON endpoint on loopback (bench/server.ts, in a child process so
 * only the client's CPU is counted):
 *
 *   1. Five ways to call an API with a token (5,000 messages, 50 in flight,
 *      3 rounds, interleaved): medians and spreads of msg/s, p50, p99 and CPU
 *      per message.
 *   2. A cold burst: 1,000 messages at once on one cold credential.
 *   3. Scale: 1,000 credentials on one origin, 3 messages each: token
 *      requests, the most in flight at once, open sockets after the wave and
 *      after idle, heap per credential after GC.
 *   4. A million messages through iiot-request: heap before and after.
 *
 * Node-RED runs in this process (node-red-node-test-helper) with the
 * helper's sinon spies removed after each load: they wrap every node's send,
 * cost CPU and keep every message.
 *
 * Environment: BENCH_MESSAGES (default 5000), BENCH_ROUNDS (3),
 * BENCH_MILLION (1000000; 0 skips), BENCH_IDLE_S (seconds of idle before the
 * socket count, default 35), BENCH_SCALE (1000).
 * Figures vary with the machine's load: compare the ratios of one run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import helperModule from 'node-red-node-test-helper';
import dataTrailsNode from '../src/nodes/iiot-datatrails.js';
import requestNode from '../src/nodes/iiot-request.js';
import tokenNode from '../src/nodes/iiot-token.js';

const helper = helperModule as any;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MILLION = Number(process.env.BENCH_MILLION ?? 1_000_000);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 35);
const SCALE = Number(process.env.BENCH_SCALE ?? 1000);
const IN_FLIGHT = 50;
const SMALL = '/bench/small';

interface Stats {
  open: number;
  maxOpen: number;
  tokenRequests: number;
  tokenInflight: number;
  maxTokenInflight: number;
  apiRequests: number;
}

class Server {
  private next = 0;
  private readonly waiting = new Map<number, (s: Stats) => void>();
  url = '';
  demo: any;
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: any) => {
      if (m.id !== undefined) {
        this.waiting.get(m.id)?.(m.stats);
        this.waiting.delete(m.id);
      }
    });
  }
  static async start(): Promise<Server> {
    const child = fork(path.join(__dirname, 'server.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const server = new Server(child);
    await new Promise<void>((resolve, reject) => {
      child.once('message', (m: any) => {
        server.url = m.url;
        server.demo = m.demo;
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`bench server exited (${code})`)));
    });
    return server;
  }
  private ask(cmd: string): Promise<Stats> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.send({ id, cmd });
    });
  }
  stats(): Promise<Stats> {
    return this.ask('stats');
  }
  reset(): Promise<Stats> {
    return this.ask('reset');
  }
  stop(): void {
    this.child.kill();
  }
}

interface Round {
  msgPerS: number;
  p50: number;
  p99: number;
  cpuUs: number;
  errors: number;
}

type Starter = (i: number, finish: (ok: boolean) => void) => void;

/** Runs `count` messages, `concurrency` at a time; each start calls finish once. */
function drive(count: number, concurrency: number, start: Starter): Promise<Round> {
  return new Promise((resolve) => {
    const latencies = new Float64Array(count);
    let next = 0;
    let finished = 0;
    let errors = 0;
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    const launch = (): void => {
      const i = next++;
      const s = performance.now();
      start(i, (ok) => {
        latencies[i] = performance.now() - s;
        if (!ok) errors++;
        finished++;
        if (next < count) launch();
        else if (finished === count) {
          const wall = performance.now() - t0;
          const used = process.cpuUsage(cpu);
          latencies.sort();
          resolve({
            msgPerS: (count / wall) * 1000,
            p50: latencies[Math.floor(count * 0.5)],
            p99: latencies[Math.min(count - 1, Math.floor(count * 0.99))],
            cpuUs: (used.user + used.system) / count,
            errors,
          });
        }
      });
    };
    for (let k = 0; k < Math.min(concurrency, count); k++) launch();
  });
}

/** Messages into `entry`; the answer arrives at `out`, a failure at `errors` (a Catch node). */
function nodeRedStarter(entry: string, out: string, errors: string, shape: (i: number) => Record<string, unknown> = () => ({})): Starter {
  const pending = new Map<number, (ok: boolean) => void>();
  let seq = 0;
  helper.getNode(out).on('input', (msg: any) => {
    const f = pending.get(msg.benchId);
    pending.delete(msg.benchId);
    f?.(msg.statusCode === 200);
  });
  helper.getNode(errors).on('input', (msg: any) => {
    const f = pending.get(msg.benchId);
    pending.delete(msg.benchId);
    f?.(false);
  });
  const node = helper.getNode(entry);
  return (i, finish) => {
    const benchId = seq++;
    pending.set(benchId, finish);
    node.receive({ payload: '', benchId, ...shape(i) });
  };
}

/**
 * The helper's spies off again: the real send, status and log. Node-RED
 * copies `send` onto each node when it is created (Node.js updateWires), so
 * the nodes of the loaded flow get the real one back one by one too.
 */
function withoutSpies(flow: Record<string, unknown>[]): void {
  helper._sandbox.restore();
  const send = helper._NodePrototype.send;
  for (const { id } of flow) {
    const node = helper.getNode(id as string);
    if (node && Object.hasOwn(node, 'send') && node._wireCount > 0) node.send = send;
  }
}

function coreNode(file: string): unknown {
  return require(require.resolve(`@node-red/nodes/core/${file}`, { paths: [path.dirname(require.resolve('node-red'))] }));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
const spread1 = (xs: number[]): string => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;

function gcHeap(): number {
  global.gc?.();
  global.gc?.();
  return process.memoryUsage().heapUsed;
}

async function dataTrailsToken(server: Server): Promise<string> {
  const res = await request(`${server.url}/archivist/iam/v1/appidp/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: server.demo.dataTrails.clientId,
      client_secret: server.demo.dataTrails.clientSecret,
    }).toString(),
  });
  const body = (await res.body.json()) as { access_token: string };
  return body.access_token;
}

/** Every node on one tab, as the editor deploys them. */
let tabs = 0;
function onTab(flow: Record<string, unknown>[]): Record<string, unknown>[] {
  const z = `tab${++tabs}`;
  return [{ id: z, type: 'tab', label: 'bench' }, ...flow.map((n) => (n.type === 'iiot-datatrails' ? n : { ...n, z }))];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const MODULES = () => [
  dataTrailsNode,
  requestNode,
  tokenNode,
  coreNode('function/15-change.js'),
  coreNode('function/10-function.js'),
  coreNode('network/21-httprequest.js'),
  coreNode('common/25-catch.js'),
  require('node-red-contrib-oauth2/src/oauth2.js'),
];

async function variants(server: Server, settings: Record<string, unknown>): Promise<string> {
  const token = await dataTrailsToken(server);
  const dt = server.demo.dataTrails;
  const creds = { clientId: dt.clientId, clientSecret: dt.clientSecret };
  const httpNode = (id: string) => ({
    id,
    type: 'http request',
    method: 'GET',
    ret: 'obj',
    url: `${server.url}${SMALL}`,
    paytoqs: 'ignore',
    wires: [[`${id}-out`]],
  });
  const flow = [
    { id: 'cfg', type: 'iiot-datatrails', url: server.url },
    // A: change node sets Authorization → http request
    {
      id: 'a',
      type: 'change',
      rules: [{ t: 'set', p: 'headers', pt: 'msg', to: JSON.stringify({ Authorization: `Bearer ${token}` }), tot: 'json' }],
      wires: [['a-http']],
    },
    httpNode('a-http'),
    { id: 'a-http-out', type: 'helper' },
    // B: iiot-token → http request
    { id: 'b', type: 'iiot-token', platform: 'datatrails', dataTrails: 'cfg', wires: [['b-http']] },
    httpNode('b-http'),
    { id: 'b-http-out', type: 'helper' },
    // C: iiot-request
    { id: 'c', type: 'iiot-request', platform: 'datatrails', dataTrails: 'cfg', method: 'GET', url: SMALL, ret: 'obj', wires: [['c-out']] },
    { id: 'c-out', type: 'helper' },
    // E: node-red-contrib-oauth2 → function → http request
    {
      id: 'e',
      type: 'oauth2',
      grant_type: 'client_credentials',
      access_token_url: `${server.url}/archivist/iam/v1/appidp/token`,
      client_id: dt.clientId,
      client_secret: dt.clientSecret,
      client_credentials_in_body: true,
      rejectUnauthorized: true,
      wires: [['e-fn']],
    },
    {
      id: 'e-fn',
      type: 'function',
      func: "msg.headers = { Authorization: 'Bearer ' + msg.oauth2Response.access_token }; delete msg.oauth2Response; return msg;",
      outputs: 1,
      wires: [['e-http']],
    },
    httpNode('e-http'),
    { id: 'e-http-out', type: 'helper' },
    { id: `catch${tabs}`, type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
  ];
  helper.settings(settings);
  await helper.startServer();
  await helper.load(MODULES(), onTab(flow), { cfg: creds, e: { client_id: dt.clientId, client_secret: dt.clientSecret } });
  withoutSpies(flow);

  const undiciAgent = new Agent();
  const smallUrl = `${server.url}${SMALL}`;
  const raw: Starter = (_i, finish) => {
    request(smallUrl, { dispatcher: undiciAgent, headers: { authorization: `Bearer ${token}` } })
      .then(async (res) => {
        JSON.parse(await res.body.text());
        finish(res.statusCode === 200);
      })
      .catch(() => finish(false));
  };
  const all: [string, Starter][] = [
    ['change node sets `Authorization` → core `http request`', nodeRedStarter('a', 'a-http-out', 'errors')],
    ['`iiot-token` → core `http request`', nodeRedStarter('b', 'b-http-out', 'errors')],
    ['`iiot-request`, token cached', nodeRedStarter('c', 'c-out', 'errors')],
    ['raw undici, same concurrency, no Node-RED', raw],
    ['node-red-contrib-oauth2 → function → core `http request`', nodeRedStarter('e', 'e-http-out', 'errors')],
  ];
  // Warm up every path (JIT, connections, the cached tokens).
  for (const [, start] of all) await drive(500, IN_FLIGHT, start);
  const results = all.map(() => [] as Round[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (let v = 0; v < all.length; v++) {
      gcHeap();
      results[v].push(await drive(MESSAGES, IN_FLIGHT, all[v][1]));
    }
  }
  await undiciAgent.close();
  await helper.unload();
  await helper.stopServer();

  const lines = [`| variant | msg/s (spread) | p50 ms | p99 ms | CPU µs/msg | errors |`, `|---|---|---|---|---|---|`];
  const medians = results.map((rs) => median(rs.map((r) => r.msgPerS)));
  all.forEach(([name], v) => {
    const rs = results[v];
    lines.push(
      `| ${name} | ${median(rs.map((r) => r.msgPerS)).toFixed(0)} (${spread(rs.map((r) => r.msgPerS))}) | ${median(rs.map((r) => r.p50)).toFixed(1)} (${spread1(rs.map((r) => r.p50))}) | ${median(rs.map((r) => r.p99)).toFixed(1)} (${spread1(rs.map((r) => r.p99))}) | ${median(rs.map((r) => r.cpuUs)).toFixed(0)} (${spread(rs.map((r) => r.cpuUs))}) | ${rs.reduce((n, r) => n + r.errors, 0)} |`,
    );
  });
  const perRound = results[2].map((r, i) => r.msgPerS / results[3][i].msgPerS);
  lines.push('');
  lines.push(
    `iiot-request / raw undici: ${(medians[2] / medians[3]).toFixed(2)} of the msg/s (per round ${perRound.map((x) => x.toFixed(2)).join(', ')}); CPU per message above raw undici: ${(median(results[2].map((r) => r.cpuUs)) - median(results[3].map((r) => r.cpuUs))).toFixed(0)} µs`,
  );
  return lines.join('\n');
}

async function coldBurst(server: Server, settings: Record<string, unknown>): Promise<string> {
  const dt = server.demo.dataTrails;
  const flow = [
    { id: 'cold', type: 'iiot-datatrails', url: server.url },
    { id: 'cr', type: 'iiot-request', platform: 'datatrails', dataTrails: 'cold', method: 'GET', url: SMALL, ret: 'obj', wires: [['cr-out']] },
    { id: 'cr-out', type: 'helper' },
    { id: `catch${tabs}`, type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
  ];
  helper.settings(settings);
  await helper.startServer();
  await helper.load(MODULES(), onTab(flow), { cold: { clientId: dt.clientId, clientSecret: dt.clientSecret } });
  withoutSpies(flow);
  await server.reset();
  const r = await drive(1000, 1000, nodeRedStarter('cr', 'cr-out', 'errors'));
  const s = await server.stats();
  await helper.unload();
  await helper.stopServer();
  return `1,000 messages at once on one cold credential: ${s.tokenRequests} token request(s), ${1000 - r.errors}/1000 ok, ${((1000 / r.msgPerS) * 1000).toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms, ${s.maxOpen} sockets open at most, ${s.open} after the burst`;
}

async function scale(server: Server, settings: Record<string, unknown>): Promise<string> {
  const dt = server.demo.dataTrails;
  const flow: Record<string, unknown>[] = [
    { id: `catch${tabs}`, type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
    { id: 'out', type: 'helper' },
  ];
  const credentials: Record<string, Record<string, string>> = {};
  for (let i = 0; i < SCALE; i++) {
    flow.push({ id: `c${i}`, type: 'iiot-datatrails', url: server.url });
    flow.push({ id: `r${i}`, type: 'iiot-request', platform: 'datatrails', dataTrails: `c${i}`, method: 'GET', url: SMALL, ret: 'obj', wires: [['out']] });
    credentials[`c${i}`] = { clientId: dt.clientId, clientSecret: dt.clientSecret };
  }
  helper.settings(settings);
  await helper.startServer();
  // The heap of the runtime with the flow loaded but unused is measured apart
  // from the heap after traffic, both after GC: the difference is what the
  // credentials hold once used (tokens, connections, pools).
  await helper.load(MODULES(), onTab(flow), credentials);
  withoutSpies(flow);
  await sleep(500);
  const before = gcHeap();
  await server.reset();
  const starters: Starter[] = [];
  const pending = new Map<number, (ok: boolean) => void>();
  let seq = 0;
  const finishOf = (msg: any, ok: boolean) => {
    const f = pending.get(msg.benchId);
    pending.delete(msg.benchId);
    f?.(ok);
  };
  helper.getNode('out').on('input', (msg: any) => finishOf(msg, msg.statusCode === 200));
  helper.getNode('errors').on('input', (msg: any) => finishOf(msg, false));
  for (let i = 0; i < SCALE; i++) {
    const node = helper.getNode(`r${i}`);
    starters.push((_j, finish) => {
      const benchId = seq++;
      pending.set(benchId, finish);
      node.receive({ payload: '', benchId });
    });
  }
  const total = SCALE * 3;
  const r = await drive(total, total, (i, finish) => starters[i % SCALE](i, finish));
  const afterWave = await server.stats();
  const after = gcHeap();
  await sleep(IDLE_S * 1000);
  const afterIdle = await server.stats();
  await helper.unload();
  await helper.stopServer();
  await sleep(200);
  const afterClose = await server.stats();
  return [
    `${SCALE} credentials on one origin, 3 messages each (${total} at once): ${total - r.errors}/${total} ok in ${((total / r.msgPerS) * 1000).toFixed(0)} ms`,
    `   token requests: ${afterWave.tokenRequests}; most in flight at once at the token host: ${afterWave.maxTokenInflight}`,
    `   open sockets: ${afterWave.maxOpen} at most, ${afterWave.open} after the wave, ${afterIdle.open} after ${IDLE_S} s idle, ${afterClose.open} after the flows stopped`,
    `   heap after GC: ${((after - before) / SCALE / 1024).toFixed(1)} KiB per credential after traffic`,
  ].join('\n');
}

async function million(server: Server, settings: Record<string, unknown>): Promise<string> {
  const dt = server.demo.dataTrails;
  const flow = [
    { id: 'm', type: 'iiot-datatrails', url: server.url },
    { id: 'mr', type: 'iiot-request', platform: 'datatrails', dataTrails: 'm', method: 'GET', url: SMALL, ret: 'obj', wires: [['mr-out']] },
    { id: 'mr-out', type: 'helper' },
    { id: `catch${tabs}`, type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
  ];
  helper.settings(settings);
  await helper.startServer();
  await helper.load(MODULES(), onTab(flow), { m: { clientId: dt.clientId, clientSecret: dt.clientSecret } });
  withoutSpies(flow);
  const start = nodeRedStarter('mr', 'mr-out', 'errors');
  await drive(5000, IN_FLIGHT, start);
  const before = gcHeap();
  const r = await drive(MILLION, IN_FLIGHT, start);
  const after = gcHeap();
  if (process.env.BENCH_SNAPSHOT) require('node:v8').writeHeapSnapshot(process.env.BENCH_SNAPSHOT);
  await helper.unload();
  await helper.stopServer();
  const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
  return `${MILLION.toLocaleString('en')} messages through iiot-request (50 in flight): ${r.msgPerS.toFixed(0)} msg/s, ${r.errors} errors; heap after GC ${mib(before)} MiB before, ${mib(after)} MiB after`;
}

async function main(): Promise<void> {
  helper.init(require.resolve('node-red'));
  const server = await Server.start();
  const settings = { iiotAuth: {}, logging: { console: { level: 'warn' } } };
  try {
    console.log(
      `node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
    console.log(`server: ${server.url} (child process); ${MESSAGES} messages, ${IN_FLIGHT} in flight, ${ROUNDS} rounds, medians (spread min–max)\n`);
    if (process.env.BENCH_ONLY === 'million') {
      console.log(`   ${await million(server, settings)}`);
      return;
    }
    console.log('4. five ways to call an API with a token\n');
    console.log(await variants(server, settings));
    console.log('\n5. cold burst');
    console.log(`   ${await coldBurst(server, settings)}`);
    console.log('\n6. scale');
    console.log(`   ${await scale(server, settings)}`);
    if (MILLION > 0) {
      console.log('\n7. flat heap');
      console.log(`   ${await million(server, settings)}`);
    }
  } finally {
    server.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
