import path from 'node:path';
import requestNode from '../../../src/nodes/iiot-request.js';
import tokenNode from '../../../src/nodes/iiot-token.js';
import type { NodeAPI } from '../../../src/nodes/node-red.js';
import { type FlowNode, uid } from '../../helpers/flow.js';
import { CONFIG_NODE_MODULES } from '../../helpers/platform-flows.js';
import { type ConformanceClient, FIXTURES } from './authorization-server.js';

/**
 * The flows the conformance suite loads: an `iiot-oauth2` config node, a get
 * token node and an authenticated request node wired to one collector, a
 * Catch node to another; optionally Node-RED's own TLS and proxy config nodes.
 */

/** Node-RED's core node module at `relative` (under @node-red/nodes/core), of the Node-RED the tests run (NODE_RED_PATH). */
export function coreNode(relative: string): (RED: NodeAPI) => void {
  const red = path.dirname(require.resolve(process.env.NODE_RED_PATH ?? 'node-red'));
  return require(require.resolve(`@node-red/nodes/core/${relative}`, { paths: [red] })) as (RED: NodeAPI) => void;
}

export const MODULES = [...CONFIG_NODE_MODULES, tokenNode, requestNode, coreNode('network/05-tls.js'), coreNode('network/06-httpproxy.js')];

export interface OAuth2Flow {
  ids: { config: string; token: string; request: string; out: string; errors: string; tls?: string; proxy?: string };
  nodes: FlowNode[];
  credentials: Record<string, Record<string, string>>;
}

export interface OAuth2FlowOptions {
  config: Record<string, unknown>;
  credentials: Record<string, string>;
  /** A core tls-config node with this client certificate and key (files in test/fixtures/tls) and the conformance CA. */
  clientCertificate?: { cert: string; key: string };
  /** Only the conformance CA, no client certificate. */
  trustConformanceCa?: boolean;
  /** A core http proxy node with this URL. */
  proxyUrl?: string;
}

export function oauth2Flow(options: OAuth2FlowOptions): OAuth2Flow {
  const ids: OAuth2Flow['ids'] = { config: uid('o2'), token: uid('tok'), request: uid('req'), out: uid('out'), errors: uid('err') };
  const nodes: FlowNode[] = [];
  if (options.clientCertificate || options.trustConformanceCa) {
    ids.tls = uid('tls');
    const file = (name: string) => path.join(FIXTURES, name);
    nodes.push({
      id: ids.tls,
      type: 'tls-config',
      ca: file('oauth2-ca.pem'),
      cert: options.clientCertificate ? file(options.clientCertificate.cert) : '',
      key: options.clientCertificate ? file(options.clientCertificate.key) : '',
      verifyservercert: true,
    });
  }
  if (options.proxyUrl) {
    ids.proxy = uid('px');
    nodes.push({ id: ids.proxy, type: 'http proxy', url: options.proxyUrl, noproxy: [] });
  }
  nodes.push(
    { id: ids.config, type: 'iiot-oauth2', ...(ids.tls ? { tls: ids.tls } : {}), ...(ids.proxy ? { proxy: ids.proxy } : {}), ...options.config },
    { id: ids.token, type: 'iiot-token', platform: 'oauth2', oauth2: ids.config, wires: [[ids.out]] },
    { id: ids.request, type: 'iiot-request', platform: 'oauth2', oauth2: ids.config, method: 'GET', url: '/items', ret: 'obj', wires: [[ids.out]] },
    { id: ids.out, type: 'helper' },
    { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
    { id: ids.errors, type: 'helper' },
  );
  return { ids, nodes, credentials: { [ids.config]: options.credentials } };
}

/** The secrets of a client, and for a PEM also its longest line (a part of the key that a log could show alone). */
export function secretsOf(credentials: { clientSecret?: string | undefined; privateKey?: string | undefined }): string[] {
  const values = [credentials.clientSecret, credentials.privateKey].filter((v): v is string => typeof v === 'string' && v !== '');
  const lines = values.flatMap((v) => (v.includes('-----BEGIN') ? [v.split('\n').sort((a, b) => b.length - a.length)[0]!] : []));
  return [...values, ...lines];
}

/** The config node's credentials for a conformance client. */
export function credentialsOf(client: ConformanceClient): Record<string, string> {
  return {
    clientId: client.clientId,
    ...(client.clientSecret ? { clientSecret: client.clientSecret } : {}),
    ...(client.privateKey ? { privateKey: client.privateKey } : {}),
  };
}
