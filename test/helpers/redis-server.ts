import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { deadPort } from './servers.js';
import { waitFor } from './wait.js';

/**
 * A real Redis for the tests: Debian's /usr/bin/redis-server on a free
 * loopback port, its data in a temporary folder (AOF with appendfsync always,
 * as docs/operations.md asks of production), stopped by `stop()`. `kill()` and
 * `start()` crash it and bring it back on the same port with the same data;
 * `start({ replicaOf })` brings it back as a replica. `pause()` and
 * `resume()` (SIGSTOP, SIGCONT) freeze it. A Sentinel group of them is in
 * redis-sentinel.ts.
 */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export class RedisServer {
  private proc?: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(options: { replicaOf?: number } = {}): Promise<RedisServer> {
    if (!fs.existsSync(REDIS_SERVER)) {
      throw new Error(`${REDIS_SERVER} is missing: install Debian's redis-server (apt-get install redis-server; .ci/run does it)`);
    }
    const server = new RedisServer(await deadPort(), fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-redis-')));
    await server.start(options);
    return server;
  }

  get running(): boolean {
    return !!this.proc;
  }

  /** Starts (or restarts) the server, as a replica of the server on `replicaOf` if given; resolves once it answers PING. */
  async start(options: { replicaOf?: number } = {}): Promise<void> {
    const args = [
      ...(options.replicaOf ? ['--replicaof', '127.0.0.1', String(options.replicaOf)] : []),
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      // A replica's full sync starts at once, not after Redis's usual 5 s wait for more replicas.
      '--repl-diskless-sync-delay',
      '0',
      '--logfile',
      path.join(this.dir, 'redis.log'),
      '--daemonize',
      'no',
    ];
    const proc = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
    this.proc = proc;
    const answers = async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}; see ${path.join(this.dir, 'redis.log')}`);
      return ping(this.port);
    };
    await waitFor(answers, { timeoutMs: 10_000, intervalMs: 50, what: `redis-server to answer PING on 127.0.0.1:${this.port}` });
  }

  /** A crash: SIGKILL, no shutdown save. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Stops the server and removes its data (a paused one is resumed to let it go). */
  async stop(): Promise<void> {
    this.proc?.kill('SIGCONT');
    await this.signal('SIGTERM');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Freezes the process (SIGSTOP): it keeps its connections, and answers nothing. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Runs redis-cli-like commands without a client library: for test set-up and checks. The raw reply. */
  async command(...args: string[]): Promise<string> {
    return rawCommand(this.port, args);
  }

  /** A command's reply, parsed: a string, a number, null, an array, or an Error for an error reply. */
  async query(...args: string[]): Promise<Reply> {
    return parseReply(await rawCommand(this.port, args))!.value;
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(500, () => socket.destroy());
    socket.on('data', (d) => {
      socket.end();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(false));
  });
}

export type Reply = string | number | null | Error | Reply[];

/** One command on a new connection to 127.0.0.1:port; resolves with the whole raw reply. */
export function rawCommand(port: number, args: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no reply to ${args[0]} from 127.0.0.1:${port} within ${timeoutMs} ms`)));
    let reply = '';
    socket.on('data', (d) => {
      reply += d.toString('utf8');
      if (parseReply(reply)) {
        socket.end();
        resolve(reply);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`the connection to 127.0.0.1:${port} closed before a whole reply`)));
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

/** A RESP2 reply from the start of `text`, and where it ends; undefined while incomplete. */
export function parseReply(text: string, at = 0): { value: Reply; end: number } | undefined {
  const lineEnd = text.indexOf('\r\n', at);
  if (lineEnd < 0) return undefined;
  const head = text.slice(at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (text[at]) {
    case '+':
      return { value: head, end: next };
    case '-':
      return { value: new Error(head), end: next };
    case ':':
      return { value: Number(head), end: next };
    case '$': {
      const length = Number(head);
      if (length < 0) return { value: null, end: next };
      // Lengths are in bytes: the replies the tests read are ASCII.
      if (text.length < next + length + 2) return undefined;
      return { value: text.slice(next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(head);
      if (count < 0) return { value: null, end: next };
      const items: Reply[] = [];
      let end = next;
      for (let i = 0; i < count; i += 1) {
        const item = parseReply(text, end);
        if (!item) return undefined;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(text.slice(at, at + 20))}`);
  }
}
