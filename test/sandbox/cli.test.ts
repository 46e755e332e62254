import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { waitFor } from '../helpers/wait.js';

const CLI = path.join(__dirname, '..', '..', 'src', 'sandbox', 'cli.js');

describe('sandbox: command line', () => {
  it('prints its URL and the demo credentials, serves, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      await waitFor(() => output.includes('Ctrl+C'), { what: () => `the sandbox to print its banner; it printed:\n${output}` });
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      assert.ok(url, output);
      for (const secret of ['ihsecret-Sandbox-', 'eipass-Sandbox-', 'dtsecret-Sandbox-', 'mbppass-Sandbox-', `${url}/mbp`]) {
        assert.ok(output.includes(secret), `${secret} in:\n${output}`);
      }
      assert.equal((await fetch(`${url}/__sandbox/echo`)).status, 200);
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, output);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses an invalid port', async () => {
    const child = spawn(process.execPath, [CLI, '--port', 'eighty'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (errors += chunk));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 1);
    assert.match(errors, /invalid port "eighty"/);
  });
});
