#!/usr/bin/env node
// `iiot-auth-sandbox [--port N]` (the package's bin; in a clone `npm run sandbox`): runs the sandbox alone on 127.0.0.1,
// for people who build flows before they have a platform account.

import { startSandbox } from './server.js';
import type { BoardingConfiguration } from './insights-hub-agent/sandbox-agent-types.js';
import type { Sandbox } from './types.js';

const DEFAULT_PORT = 1881;

/** `--port N` or `--port=N`, else SANDBOX_PORT, else 1881. 0 picks a free port. */
function portFrom(args: string[], env: NodeJS.ProcessEnv): number {
  const index = args.findIndex((arg) => arg === '--port' || arg.startsWith('--port='));
  const text = index < 0 ? env.SANDBOX_PORT || String(DEFAULT_PORT) : args[index].includes('=') ? args[index].split('=')[1] : args[index + 1];
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port "${text}": give a number from 0 to 65535`);
  return port;
}

function banner(sandbox: Sandbox, boarding: BoardingConfiguration): string {
  const { insightsHubApp, insightsHubService, ciscoEi, dataTrails, mbp, oauth2 } = sandbox.demo;
  const rows = (title: string, fields: Record<string, string>): string =>
    [title, ...Object.entries(fields).map(([name, value]) => `  ${name.padEnd(14)} ${value}`)].join('\n');
  return [
    `IIoT auth sandbox listening on ${sandbox.url}`,
    '',
    rows('Insights Hub app', { gateway: sandbox.url, ...insightsHubApp }),
    rows('Insights Hub agent (SHARED_SECRET, not onboarded yet)', {
      agent: boarding.content.clientId,
      boarding: JSON.stringify(boarding),
    }),
    rows('Insights Hub service credentials', { gateway: sandbox.url, ...insightsHubService }),
    rows('Cisco EI', {
      server: sandbox.url,
      username: ciscoEi.username,
      password: ciscoEi.password,
      ...Object.fromEntries(ciscoEi.tenants.map((tenant, index) => [`tenant ${index + 1}`, `${tenant.id} (${tenant.name})`])),
    }),
    rows('DataTrails', { url: sandbox.url, ...dataTrails }),
    rows('MBP', { url: `${sandbox.url}/mbp`, ...mbp }),
    rows('OAuth 2.0 client credentials', {
      tokenUrl: `${sandbox.url}/oauth2/token`,
      apiUrl: `${sandbox.url}/oauth2/api`,
      clientId: oauth2.clientId,
      clientSecret: oauth2.clientSecret,
      audience: oauth2.audience,
    }),
    rows('OAuth 2.0 login (authorization code; the same client)', {
      issuer: `${sandbox.url}/oauth2`,
      apiUrl: `${sandbox.url}/oauth2/api`,
      user: `${oauth2.user.name} (press Allow on the consent page; no password)`,
    }),
    '',
    'These demo credentials work against this sandbox only. Press Ctrl+C to stop.',
  ].join('\n');
}

async function main(): Promise<void> {
  const sandbox = await startSandbox({ port: portFrom(process.argv.slice(2), process.env) });
  // One agent ready to onboard, so that agent flows can be tried at once.
  const agent = sandbox.agents.create({ name: 'Demo agent' });
  console.log(banner(sandbox, sandbox.agents.boardingConfiguration(agent.id)));
  const shutDown = (signal: NodeJS.Signals): void => {
    process.off('SIGINT', shutDown);
    process.off('SIGTERM', shutDown);
    console.log(`${signal}: stopping the sandbox`);
    sandbox.stop().catch((error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    });
  };
  process.on('SIGINT', shutDown);
  process.on('SIGTERM', shutDown);
}

main().catch((error: unknown) => {
  console.error(`sandbox: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
