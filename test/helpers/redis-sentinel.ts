import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REDIS_SERVER, RedisServer, rawCommand, parseReply, type Reply } from './redis-server.js';
import { deadPort } from './servers.js';
import { waitFor } from './wait.js';

/**
 * A Redis primary, one replica and three Sentinels, each a real process on a
 * free loopback port with its data in a temporary folder: Debian's
 * redis-server, the Sentinels as `redis-server <conf> --sentinel` (nothing
 * more to install). Sentinels fail over fast here (down after 1 s), and need
 * two of three to agree. `failover()` kills the primary and waits for
 * Sentinel to promote the replica, then brings the old primary back as the
 * new one's replica, so a test can fail over again. `stop()` stops every
 * process, also a paused one.
 */
export const MASTER_NAME = 'iiot';

export class RedisSentinelGroup {
  private constructor(
    readonly servers: [RedisServer, RedisServer],
    private readonly sentinels: SentinelProcess[],
  ) {}

  /** Where the Sentinels listen, as `iiotAuth.agentStore.redis.sentinels` takes them. */
  get sentinelNodes(): Array<{ host: string; port: number }> {
    return this.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port }));
  }

  static async start(): Promise<RedisSentinelGroup> {
    const started: Array<RedisServer | SentinelProcess> = [];
    try {
      const primary = await RedisServer.start();
      started.push(primary);
      const replica = await RedisServer.start({ replicaOf: primary.port });
      started.push(replica);
      const sentinels: SentinelProcess[] = [];
      for (let i = 0; i < 3; i += 1) {
        const sentinel = await SentinelProcess.start(primary.port);
        started.push(sentinel);
        sentinels.push(sentinel);
      }
      const group = new RedisSentinelGroup([primary, replica], sentinels);
      await group.settled();
      return group;
    } catch (err) {
      for (const process of started.reverse()) await process.stop();
      throw err;
    }
  }

  /** The server the Sentinels name as the primary. */
  async primary(): Promise<RedisServer> {
    const reply = (await this.sentinels[0]!.query('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as string[];
    const server = this.servers.find((s) => s.port === Number(reply[1]));
    if (!server) throw new Error(`the Sentinels name 127.0.0.1:${reply[1]} as the primary, none of the group's servers`);
    return server;
  }

  async replica(): Promise<RedisServer> {
    const primary = await this.primary();
    return this.servers.find((s) => s !== primary)!;
  }

  /**
   * Waits until the replica replicates and every Sentinel knows both servers,
   * the other Sentinels, and that a failover can be authorised: then a
   * failover works. "Replicates" is proven, not read off INFO: a write on the
   * primary is acknowledged by the replica (WAIT), as the store's own
   * acknowledgements need (INFO said "online" while WAIT still got no answer
   * after a failover on a loaded machine).
   */
  async settled(): Promise<void> {
    await waitFor(
      async () => {
        const primary = await this.primary();
        const replica = this.servers.find((s) => s !== primary)!;
        const info = String(await primary.query('INFO', 'replication'));
        if (!info.includes(`port=${replica.port},state=online`)) return false;
        await primary.query('SET', 'settled-probe', String(Date.now()));
        if ((await primary.query('WAIT', '1', '1000')) !== 1) return false;
        for (const sentinel of this.sentinels) {
          const quorum = await sentinel.query('SENTINEL', 'CKQUORUM', MASTER_NAME);
          if (quorum instanceof Error) return false;
          const replicas = (await sentinel.query('SENTINEL', 'replicas', MASTER_NAME)) as string[][];
          const seen = replicas.map(fields).find((r) => Number(r.port) === replica.port);
          if (seen?.flags !== 'slave') return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the Sentinel group to settle (replica in sync, Sentinels agreeing)' },
    );
  }

  /**
   * Holds replication back: everything written so far is on the replica
   * (WAIT), then the replica is frozen (SIGSTOP) and the primary drops its
   * link, so writes from now on stay on the primary only (the frozen
   * replica cannot reconnect, and nothing waits in its socket).
   */
  async holdReplication(): Promise<void> {
    const primary = await this.primary();
    const replica = await this.replica();
    const acknowledged = await primary.query('WAIT', '1', '5000');
    if (acknowledged !== 1) throw new Error(`the replica did not catch up before replication was held back (WAIT answered ${String(acknowledged)})`);
    replica.pause();
    const killed = await primary.query('CLIENT', 'KILL', 'TYPE', 'replica');
    if (killed !== 1) throw new Error(`the primary did not drop its replica's link (CLIENT KILL answered ${String(killed)})`);
  }

  /**
   * The primary crashes (SIGKILL), the replica goes on (SIGCONT) and the
   * Sentinels promote it. Resolves once every Sentinel names it; the old
   * primary is not back yet (see `restoreReplica`).
   */
  async killPrimary(): Promise<{ old: RedisServer; promoted: RedisServer }> {
    const old = await this.primary();
    const promoted = this.servers.find((s) => s !== old)!;
    await old.kill();
    promoted.resume();
    return { old, promoted };
  }

  /** Waits until every Sentinel names `promoted` as the primary and it says it is one. */
  async promoted(promoted: RedisServer): Promise<void> {
    await waitFor(
      async () => {
        for (const sentinel of this.sentinels) {
          const reply = (await sentinel.query('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as string[];
          if (Number(reply[1]) !== promoted.port) return false;
        }
        return ((await promoted.query('ROLE')) as Reply[])[0] === 'master';
      },
      { timeoutMs: 60_000, intervalMs: 100, what: () => `Sentinel to promote 127.0.0.1:${promoted.port}\n${this.logs()}` },
    );
  }

  /** Brings the old primary back as the new primary's replica (its data is replaced by a full sync), and waits until it replicates. */
  async restoreReplica(old: RedisServer, promoted: RedisServer): Promise<void> {
    await old.start({ replicaOf: promoted.port });
    await this.settled();
  }

  /** The whole failover: kill, promotion, the old primary back as a replica. */
  async failover(): Promise<void> {
    const { old, promoted } = await this.killPrimary();
    await this.promoted(promoted);
    await this.restoreReplica(old, promoted);
  }

  /** The Sentinels' logs, for a failure message. */
  logs(): string {
    return this.sentinels.map((s) => s.log()).join('\n');
  }

  async stop(): Promise<void> {
    for (const sentinel of this.sentinels) await sentinel.stop();
    for (const server of this.servers) await server.stop();
  }
}

/** A SENTINEL replicas entry (a flat list of names and values) as an object. */
function fields(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

/** One Sentinel: `redis-server <conf> --sentinel`, with a config file it may rewrite, in its own temporary folder. */
class SentinelProcess {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private proc: ChildProcess | undefined,
  ) {}

  static async start(primaryPort: number): Promise<SentinelProcess> {
    const port = await deadPort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-sentinel-'));
    const conf = path.join(dir, 'sentinel.conf');
    fs.writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        'daemonize no',
        `dir ${dir}`,
        `logfile ${path.join(dir, 'sentinel.log')}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
        `sentinel failover-timeout ${MASTER_NAME} 3000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        '',
      ].join('\n'),
    );
    const proc = spawn(REDIS_SERVER, [conf, '--sentinel'], { stdio: 'ignore' });
    const sentinel = new SentinelProcess(port, dir, proc);
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`the Sentinel exited with ${proc.exitCode}:\n${sentinel.log()}`);
        return rawCommand(port, ['PING'], 500).then(
          (reply) => reply.startsWith('+PONG'),
          () => false,
        );
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `the Sentinel to answer PING on 127.0.0.1:${port}` },
    );
    return sentinel;
  }

  async query(...args: string[]): Promise<Reply> {
    return parseReply(await rawCommand(this.port, args))!.value;
  }

  log(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'sentinel.log'), 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '(no Sentinel log)';
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
