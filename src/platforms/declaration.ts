import type { ErrorCodeTable } from '../core/errors.js';
import type { HttpClient, HttpRequest, HttpResponse } from '../core/http/index.js';
import type { Token, TokenProvider } from '../core/token.js';
import { DEFAULT_RENEWAL, type RenewalPolicy } from '../core/token-engine.js';

/**
 * Everything the rest of the package knows about one platform, declared by
 * the platform's own module and collected in ./index.ts. The nodes, the HTTP
 * layer's credential stripping, the editor's platform list (generated at
 * build time), the demo and the test matrix read these; nothing else names a
 * platform.
 */
export interface PlatformDeclaration<Id extends string = string> {
  /** The action nodes' `platform` value, e.g. "datatrails". */
  id: Id;
  /** Shown in error messages ("no DataTrails config node is selected"). */
  label: string;
  /** The config node's type, e.g. "iiot-datatrails". */
  configType: string;
  /** The action nodes' property that references the config node, e.g. "dataTrails". */
  property: string;
  /** The config node's own properties (besides name, tls and proxy). */
  fields: readonly string[];
  /** The config node's credentials, as Node-RED registers them. */
  credentials: Readonly<Record<string, { type: 'text' | 'password' }>>;
  /** The headers its token puts on API requests. */
  headers: readonly string[];
  /** Those of `headers` that identify the caller: a redirect to another origin drops them. */
  secretHeaders: readonly string[];
  /** Headers besides Retry-After in which the platform says how many seconds to wait after a 429/503. */
  rateLimitHeaders: readonly string[];
  /** When its tokens are renewed; today's engine-wide numbers unless the platform says otherwise. */
  renewal: RenewalPolicy;
  /** The error codes only this platform raises, with their help (docs/error-codes.md); the core's are in core/errors.ts. */
  errorCodes: ErrorCodeTable;
  /**
   * Builds the token provider from a config node's settings. Absent for a
   * platform whose provider needs the runtime's services (the Insights Hub
   * agent's state store): its config node builds it.
   */
  configure?(input: ConfigInput): ProviderSetup;
}

/** A config node's settings as the declaration's `configure` reads them. */
export interface ConfigInput {
  /** A property, trimmed; '' when absent. */
  text(key: string): string;
  /** A checkbox property. */
  flag(key: string): boolean;
  /** The credentials as stored (untrimmed). */
  credentials: Record<string, string>;
  env: NodeJS.ProcessEnv;
}

export interface ProviderSetup {
  provider: TokenProvider;
  /** Every value that shapes the tokens, secrets included (they are only hashed). */
  fingerprintParts: Record<string, unknown>;
  /** Values that must never appear in any output. */
  secrets: Array<string | undefined>;
  /** `[id, secret]` pairs that travel as HTTP Basic authentication. */
  basicPairs?: [string, string][];
}

/** A declaration with the defaults filled in: only what differs needs saying. */
export function declarePlatform<const Id extends string>(
  declaration: Omit<PlatformDeclaration<Id>, 'secretHeaders' | 'rateLimitHeaders' | 'renewal' | 'errorCodes'> &
    Partial<Pick<PlatformDeclaration, 'secretHeaders' | 'rateLimitHeaders' | 'renewal' | 'errorCodes'>>,
): PlatformDeclaration<Id> {
  return {
    ...declaration,
    secretHeaders: declaration.secretHeaders ?? declaration.headers,
    rateLimitHeaders: declaration.rateLimitHeaders ?? [],
    renewal: declaration.renewal ?? DEFAULT_RENEWAL,
    errorCodes: declaration.errorCodes ?? {},
  };
}

/**
 * The token provider of a platform whose token is one request and its answer
 * (every platform but the Insights Hub agent): no class of its own needed.
 */
export function exchangeProvider(
  baseUrl: string,
  request: () => HttpRequest,
  read: (res: HttpResponse, now: number) => Token,
  refusesPermission?: TokenProvider['refusesPermission'],
): TokenProvider {
  return {
    baseUrl,
    async fetchToken(http: HttpClient): Promise<Token> {
      return read(await http.send(request()), Date.now());
    },
    ...(refusesPermission ? { refusesPermission } : {}),
  };
}
