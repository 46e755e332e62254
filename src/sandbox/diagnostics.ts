// Endpoints that imitate no platform but help whoever builds a flow (and the
// tests): an echo that shows what a client sent (credentials redacted), and a
// redirect.

import type { Platform, Reply, Route, SandboxRequest } from './http-kit.js';
import { emptyReply, header, jsonReply } from './http-kit.js';
import type { PlatformName } from './types.js';

/** Header values the echo never shows: they carry credentials. */
const REDACTED_HEADERS = new Set(['authorization', 'cookie', 'x-space-auth-key', 'x-mbp-access-request']);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export function diagnosticRoutes(platforms: Platform[]): Route[] {
  /** The first platform for which the request carries a working credential. */
  async function authenticatedAs(request: SandboxRequest): Promise<PlatformName | null> {
    for (const platform of platforms) {
      if (await platform.authenticates(request)) return platform.name;
    }
    return null;
  }

  async function echo(request: SandboxRequest): Promise<Reply> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined) headers[name] = REDACTED_HEADERS.has(name) ? '<redacted>' : value;
    }
    const query: Record<string, string | string[]> = {};
    for (const name of new Set(request.query.keys())) {
      const values = request.query.getAll(name);
      query[name] = values.length === 1 ? values[0] : values;
    }
    return jsonReply(200, {
      method: request.method,
      path: request.rawPath,
      query,
      headers,
      body: request.body.toString('utf8'),
      authenticated: await authenticatedAs(request),
      tenant: header(request, 'x-tenant-id') ?? null,
    });
  }

  function redirect(request: SandboxRequest): Reply {
    const to = request.query.get('to');
    if (!to) return jsonReply(400, { error: 'Bad Request', message: 'the query parameter "to" is required' });
    const status = Number(request.query.get('status') ?? 302);
    if (!REDIRECT_STATUSES.has(status)) {
      return jsonReply(400, { error: 'Bad Request', message: `status must be one of ${[...REDIRECT_STATUSES].join(', ')}` });
    }
    return emptyReply(status, { location: to });
  }

  return [
    { endpoint: 'sandbox.echo', path: /^\/__sandbox\/echo(?:\/.*)?$/, methods: { '*': echo } },
    { endpoint: 'sandbox.redirect', path: /^\/__sandbox\/redirect$/, methods: { '*': redirect } },
  ];
}
