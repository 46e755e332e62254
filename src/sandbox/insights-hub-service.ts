// Insights Hub service credentials (docs/protocols.md, Insights Hub service
// credentials): the tenant's identity service (piam) issues client
// credentials tokens, `POST /oauth/token` with the client as HTTP Basic. The
// SDK derives the piam address from the gateway's (against the sandbox: its
// own origin) and checks the token with the piam's `/token_keys`, so the
// tokens are signed by the Insights Hub imitation's issuer and its key, and
// its gateway API takes them.

import type { JWTPayload } from 'jose';
import { bearerToken, header, jsonReply, mediaType, type Platform, type Reply, type SandboxContext, type SandboxRequest } from './http-kit.js';
import type { InsightsHubPlatform } from './insights-hub.js';

/** The scopes a service credential's token carries in the sandbox (our choice of names). */
const SERVICE_SCOPES = ['mdsp:core:im.Users.read', 'mdsp:core:assetmanagement.standarduser'];

/** UAA's error body, `{error, error_description}`. */
const uaaError = (status: number, error: string, description: string, headers?: Record<string, string>): Reply =>
  jsonReply(status, { error, error_description: description }, headers);

/** `Basic base64(id:secret)`, taken as it is: UAA decodes no form-encoding unless asked to (X-CF-ENCODED-CREDENTIALS). */
function basicCredentials(value: string | undefined): [string, string] | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? [decoded.slice(0, colon), decoded.slice(colon + 1)] : undefined;
}

export function createInsightsHubService(context: SandboxContext, insightsHub: InsightsHubPlatform): Platform {
  const demo = context.demo.insightsHubService;
  const isServiceToken = (claims: JWTPayload | undefined) => claims?.client_id === demo.clientId;

  async function issueToken(request: SandboxRequest): Promise<Reply> {
    const credentials = basicCredentials(header(request, 'authorization'));
    const unauthorized = (description: string) => uaaError(401, 'unauthorized', description, { 'www-authenticate': 'Basic realm="UAA/client"' });
    if (!credentials) return unauthorized('Full authentication is required to access this resource');
    if (credentials[0] !== demo.clientId || credentials[1] !== demo.clientSecret) return unauthorized('Bad credentials');
    if (mediaType(request) !== 'application/x-www-form-urlencoded') {
      return uaaError(400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
    }
    const grant = new URLSearchParams(request.body.toString('utf8')).get('grant_type');
    if (grant !== 'client_credentials') return uaaError(400, 'unsupported_grant_type', `Unsupported grant type: ${String(grant).slice(0, 40)}`);
    const lifetime = context.lifetimes.insightsHubServiceToken;
    const issued = await insightsHub.issueToken(
      {
        sub: demo.clientId,
        client_id: demo.clientId,
        cid: demo.clientId,
        azp: demo.clientId,
        grant_type: 'client_credentials',
        scope: SERVICE_SCOPES,
        ten: demo.tenant,
        schemas: ['urn:siemens:mindsphere:iam:v1'],
      },
      lifetime,
    );
    return jsonReply(200, { access_token: issued.token, token_type: 'bearer', expires_in: lifetime, scope: SERVICE_SCOPES.join(' '), jti: issued.jti });
  }

  return {
    name: 'insights-hub-service',
    routes: [{ endpoint: 'insightsHubService.token', path: /^\/oauth\/token$/, methods: { POST: issueToken } }],
    async authenticates(request) {
      const token = bearerToken(request);
      return token !== undefined && isServiceToken(await insightsHub.verifyToken(token));
    },
    // One issuer for both: revoking the service tokens revokes the app tokens too, as a key rotation at the piam would.
    revoke: () => insightsHub.revoke(),
    settle: async () => {},
  };
}
