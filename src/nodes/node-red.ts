/**
 * The slice of Node-RED's runtime API these nodes use. Written here rather
 * than taken from @types/node-red, which lags the runtime and types far more
 * than we need.
 */
export interface NodeMessage {
  _msgid?: string;
  [key: string]: unknown;
}

export type NodeStatus = { fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey'; shape?: 'dot' | 'ring'; text?: string } | Record<string, never>;

export interface Node {
  id: string;
  type: string;
  name?: string;
  credentials: Record<string, string | undefined>;
  on(event: 'input', listener: (msg: NodeMessage, send: (msg: NodeMessage | NodeMessage[]) => void, done: (err?: Error) => void) => void): void;
  on(event: 'close', listener: (removed: boolean, done: () => void) => void): void;
  status(status: NodeStatus): void;
  /** Sends a message without an input (a node that starts messages of its own). */
  send(msg: NodeMessage | NodeMessage[]): void;
  log(message: string): void;
  warn(message: string): void;
  error(message: string | Error, msg?: NodeMessage): void;
}

export interface NodeDefinition {
  id: string;
  type: string;
  name?: string;
  [key: string]: unknown;
}

export interface NodeAPI {
  nodes: {
    createNode(node: Node, definition: NodeDefinition): void;
    getNode(id: string): unknown;
    getCredentials?(id: string): unknown;
    /** Calls back with the definition of every node of the deployed flows (set before the nodes start). */
    eachNode?(callback: (definition: NodeDefinition) => void): void;
    registerType(
      type: string,
      construct: (this: Node, definition: NodeDefinition) => void,
      options?: { credentials?: Record<string, { type: 'text' | 'password' }> },
    ): void;
  };
  settings: Record<string, unknown> & { userDir?: string };
  httpAdmin: {
    get(path: string, ...handlers: Array<(req: AdminRequest, res: AdminResponse, next: () => void) => void>): void;
    post(path: string, ...handlers: Array<(req: AdminRequest, res: AdminResponse, next: () => void) => void>): void;
    get(path: string, ...handlers: Array<(req: AdminRequest, res: AdminResponse, next: () => void) => void>): void;
  };
  /** Messages to the editors (Node-RED's comms); absent in a runtime without an editor. */
  comms?: { publish(topic: string, data: unknown, retain: boolean): void };
  auth: { needsPermission(permission: string): (req: AdminRequest, res: AdminResponse, next: () => void) => void };
  _(key: string, substitutions?: Record<string, unknown>): string;
  log: { info(m: string): void; warn(m: string): void; error(m: string): void };
}

/** The core `tls-config` node, as far as we use it. */
export interface TlsConfigNode {
  addTLSOptions(options: Record<string, unknown>): Record<string, unknown>;
}

/** The core `http proxy` node, as far as we use it. */
export interface HttpProxyNode {
  url: string;
  noproxy?: string[];
  credentials?: { username?: string; password?: string };
}

/** An editor admin API request and response (express underneath). */
export interface AdminRequest {
  body?: Record<string, unknown>;
  params?: Record<string, string | undefined>;
  headers?: Record<string, string | string[] | undefined>;
  query?: Record<string, unknown>;
  protocol?: string;
  /** The editor user (with adminAuth). */
  user?: { username?: string };
}
export interface AdminResponse {
  status(code: number): AdminResponse;
  json(body: unknown): void;
  set(name: string, value: string): AdminResponse;
  send(body: string): void;
}
