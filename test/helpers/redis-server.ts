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
 * `start()` crash it and bring it back on the same port with the same data.
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

  static async start(): Promise<RedisServer> {
    if (!fs.existsSync(REDIS_SERVER)) {
      throw new Error(`${REDIS_SERVER} is missing: install Debian's redis-server (apt-get install redis-server; .ci/run does it)`);
    }
    const server = new RedisServer(await deadPort(), fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-redis-')));
    await server.start();
    return server;
  }

  /** Starts (or restarts) the server; resolves once it answers PING. */
  async start(): Promise<void> {
    const args = [
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

  /** Stops the server and removes its data. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs redis-cli-like commands without a client library: for test set-up and checks. */
  async command(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, '127.0.0.1');
      let reply = '';
      socket.on('data', (d) => {
        reply += d.toString('utf8');
        if (reply.endsWith('\r\n')) {
          socket.end();
          resolve(reply);
        }
      });
      socket.on('error', reject);
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
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
