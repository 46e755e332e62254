// The parts of oidc-provider (ESM, ships no types) that the conformance suite uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  interface Model {
    find(value: string): Promise<{ clientId: string; destroy(): Promise<void> } | undefined>;
  }
  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (...args: any[]) => void): this;
    proxy: boolean;
    ClientCredentials: Model;
  }
  export default Provider;
}
