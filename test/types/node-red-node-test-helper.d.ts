// The parts of node-red-node-test-helper (which ships no types) that the tests use.
declare module 'node-red-node-test-helper' {
  interface SuperTestLike {
    get(path: string): any;
    post(path: string): any;
  }
  interface Helper {
    init(runtimePath?: string, settings?: Record<string, unknown>): void;
    settings(settings?: Record<string, unknown>): Record<string, unknown>;
    startServer(): Promise<void>;
    stopServer(): Promise<void>;
    load(modules: unknown, flow: unknown[], credentials?: Record<string, unknown>): Promise<void>;
    unload(): Promise<void>;
    setFlows(flow: unknown[], type: string, credentials?: Record<string, unknown>): Promise<void>;
    getNode(id: string): unknown;
    request(): SuperTestLike;
    log(): unknown;
    _NodePrototype: Record<string, unknown>;
    _redNodes: { getFlows(): unknown; getCredentialDefinition?(type: string): unknown };
  }
  const helper: Helper;
  export default helper;
}
