// Shared by the compatibility tests: the official Siemens Node SDK
// (@mindconnect/mindconnect-nodejs, a devDependency), run unmodified against a
// local server, with its state folder in a temp dir and no way to the network.

import diagnosticsChannel from 'node:diagnostics_channel';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Socket } from 'node:net';

/** The SDK reads these when it constructs a client: unset, so it never tries a proxy (and the network behind it). */
const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'DEBUG'];

export interface SdkSandboxEnvironment {
  /** The SDK's agent state folder (its `.mc/`), a fresh temp dir. */
  stateDir: string;
  /** Every host the process opened a TCP connection to (or looked up) while the SDK ran. */
  remoteHosts(): string[];
  restore(): void;
}

/**
 * Prepares the process for the SDK: a temp state folder, no proxy variables,
 * and a record (Node's diagnostics channel, nothing patched) of every outgoing
 * connection, so a test can assert that all of them went to loopback.
 */
export function sdkEnvironment(): SdkSandboxEnvironment {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iiot-mc-sdk-'));
  const saved = new Map(PROXY_VARIABLES.map((name) => [name, process.env[name]]));
  for (const name of PROXY_VARIABLES) delete process.env[name];
  const hosts = new Set<string>();
  const onSocket = (message: unknown): void => {
    const socket = (message as { socket: Socket }).socket;
    socket.once('lookup', (_error: Error | null, _address: string, _family: number, host: string) => hosts.add(host));
    socket.once('connect', () => hosts.add(socket.remoteAddress ?? '?'));
    // A connection that failed names where it was going; a reset of an open one adds nothing new.
    socket.once('error', (error: NodeJS.ErrnoException & { address?: string }) => {
      if (error.address !== undefined) hosts.add(error.address);
    });
  };
  diagnosticsChannel.subscribe('net.client.socket', onSocket);
  return {
    stateDir,
    remoteHosts: () => [...hosts],
    restore() {
      diagnosticsChannel.unsubscribe('net.client.socket', onSocket);
      for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
      fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** A 3072-bit RSA key in PKCS#1 PEM, as the SDK's docs make it (`openssl genrsa 3072`). */
export function rsa3072Pkcs1(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  return privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
}

export function basicAuth(clientId: string, clientSecret: string): string {
  return `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
}
