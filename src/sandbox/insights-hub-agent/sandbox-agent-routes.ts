// Insights Hub Agent Management (docs/protocols.md, Insights Hub agents):
// onboarding, key rotation, agent tokens and the data source configuration
// (agent side), and the agent administration an app does with its Technical
// Token Manager token (app side). Served by the sandbox's own origin: the
// boarding configurations' baseUrl is the sandbox URL, so every path is under
// /api/agentmanagement/v3. The official Node SDK (@mindconnect/mindconnect-nodejs)
// runs against it unmodified (test/compat/mindconnect-sdk.test.ts).
//
// Choices where the documents are silent (docs/protocols.md marks each as the
// sandbox's assumption or the official SDK's observed behaviour):
// - Error bodies. OAuth endpoints (register, rotate, token) answer OAuth-style
//   {error, error_description}: a bad IAT or RAT is 401 invalid_token (RFC 7591
//   §3 / RFC 7592 §2, with WWW-Authenticate), a bad body 400
//   invalid_client_metadata or invalid_request, a bad client assertion 401
//   invalid_client (see sandbox-agent-assertion.ts). A missing or invalid
//   bearer token on the other endpoints is 401 {error: "invalid_token", …}, as
//   on the sandbox's gateway APIs; their other errors use the Agent Management
//   error body {id (correlation id), message}.
// - Boarding status: ONBOARDING from registration until the first agent token,
//   then ONBOARDED; NOT_ONBOARDED again after offboarding.
// - IATs (the seed): one is generated when the agent is created and when it is
//   offboarded; GET of the boarding configuration shows that one (a new one
//   only once it has expired, so an agent whose IAT ran out can still be
//   onboarded). For an onboarded agent (ONBOARDING or ONBOARDED) the answer is
//   409: offboard first. A failed registration (400) does not use up the IAT.
//   Register and rotate want Content-Type application/json (400 otherwise);
//   rotation needs client_id in the body (RFC 7592 §2.2, and the SDK sends
//   it), registration accepts {} (what the SDK sends) as well.
// - The RAT never expires with time (the seed: "valid indefinitely"): a
//   rotation works even after client_secret_expires_at. Once a newer
//   registration has been used, the older RATs and credentials are refused:
//   the stricter reading, so that a client proven here also works where the
//   real service keeps older RATs longer. Offboarding revokes them all.
// - Agent tokens stop working when their agent is offboarded or deleted (401).
//   The data source configuration takes the agent's own token, or an app (or
//   user) token with the Agent Management scope, as the SDK's Agent Management
//   client sends it.
// - An agent without a data source configuration has an empty one: GET gives
//   {id, eTag: "0", configurationId: "", dataSources: []}, and the first PUT
//   sends If-Match 0. `id` is the agent id (one configuration per agent).
// - eTags are decimal numbers sent as strings in bodies ("0" for a new agent)
//   and quoted in the ETag header. A PUT or DELETE without If-Match is 400
//   (If-Match 1, as the SDK sends it, and "1" and W/"1" are accepted); a stale one 412.
// - POST /agents needs name and entityId (the API model makes both required):
//   400 otherwise. DELETE /agents/{id} answers 204, also for an onboarded
//   agent. Agent names are unique in the tenant (409). PUT /agents/{id} takes
//   {name, securityProfile?, entityId?}; the profile cannot change while
//   onboarded (409), entityId never (400).
// - Online status: ONLINE while an agent token issued to it is unexpired;
//   `since` is when that began, or when the last token expired (or the agent
//   was created or offboarded).
// - The agent token's `scope` is a space-separated string (RFC 6749), as the
//   app token's. token_key's `value` is the PEM without line breaks (as the
//   SDK's fixtures show: the SDK inserts them itself).

import { randomUUID, type KeyObject } from 'node:crypto';
import { checkClientAssertion } from './sandbox-agent-assertion.js';
import { checkDataSourceConfiguration, parseIfMatch } from './sandbox-agent-data-sources.js';
import { SandboxAgentRegistry, rsaKeyFromJwk, type SandboxAgentRecord, type Registration } from './sandbox-agent-registry.js';
import { SECURITY_PROFILES, type SandboxAgents, type SecurityProfile } from './sandbox-agent-types.js';
import { bearerToken, emptyReply, header, isPlainObject, jsonObjectBody, jsonReply, mediaType } from '../http-kit.js';
import type { Handler, Platform, Reply, Route, SandboxContext, SandboxRequest } from '../http-kit.js';
import { TokenIssuer } from '../token-issuer.js';
import { AGENT_MANAGEMENT_SCOPE } from '../insights-hub.js';

const BASE = '/api/agentmanagement/v3';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const AGENT_SCOPE = 'mdsp:core:DefaultAgent';
const ID = '([^/]+)';

export interface InsightsHubAgentsPlatform extends Platform {
  agents: SandboxAgents;
  /** The agents' clock is Date.now() + skewMs. */
  clock: { skewMs: number };
}

interface Credential {
  publicKey?: KeyObject;
  kid?: string;
}

/** Verifies an Insights Hub app token (the Technical Token Manager's); the claims, or undefined. */
export type AppTokenVerifier = (token: string) => Promise<Record<string, unknown> | undefined>;

const oauthError = (status: number, error: string, description: string, headers?: Record<string, string>): Reply =>
  jsonReply(status, { error, error_description: description }, headers);

const invalidToken = (description: string): Reply => oauthError(401, 'invalid_token', description, { 'www-authenticate': 'Bearer error="invalid_token"' });

/** The Agent Management API's error body. */
const apiError = (status: number, message: string): Reply => jsonReply(status, { id: randomUUID(), message });

const IAT_PROBLEMS = {
  invalid: 'Invalid initial access token (IAT): not one this platform issued',
  used: 'The initial access token (IAT) was already used: download a new boarding configuration',
  'agent-gone': 'The agent of this initial access token (IAT) no longer exists',
  superseded: 'The initial access token (IAT) is no longer valid: the agent was onboarded or offboarded since; download a new boarding configuration',
} as const;

export async function createInsightsHubAgents(context: SandboxContext, verifyAppToken: AppTokenVerifier): Promise<InsightsHubAgentsPlatform> {
  const clock = { skewMs: 0 };
  const now = (): number => Date.now() + clock.skewMs;
  const [state, issuer] = await Promise.all([
    SandboxAgentRegistry.create({ baseUrl: context.url, tenant: context.demo.insightsHubApp.hostTenant, lifetimes: context.lifetimes, now }),
    TokenIssuer.create(`${context.url}${BASE}/oauth/token`, { now }),
  ]);

  // --- agent side: registration ---------------------------------------------

  function registrationReply(status: number, agent: SandboxAgentRecord, registration: Registration): Reply {
    const shared = agent.securityProfile === 'SHARED_SECRET';
    return jsonReply(
      status,
      {
        client_id: agent.id,
        ...(shared ? { client_secret: registration.clientSecret } : {}),
        client_secret_expires_at: registration.secretExpiresAt,
        grant_types: ['client_credentials'],
        registration_access_token: registration.rat,
        registration_client_uri: `${context.url}${BASE}/register/${agent.id}`,
        token_endpoint_auth_method: shared ? 'client_secret_jwt' : 'private_key_jwt',
      },
      { 'cache-control': 'no-store' },
    );
  }

  /** The new credential the body brings (a key for RSA_3072; nothing for SHARED_SECRET, whose secret the sandbox makes), or a 400. */
  function readCredential(agent: SandboxAgentRecord, request: SandboxRequest, clientIdRequired: boolean): Credential | Reply {
    if (mediaType(request) !== 'application/json') return oauthError(400, 'invalid_request', 'Content-Type must be application/json');
    const body = jsonObjectBody(request);
    if (!body) return oauthError(400, 'invalid_request', 'The request body must be a JSON object');
    if (body.client_id === undefined ? clientIdRequired : body.client_id !== agent.id) {
      const message = body.client_id === undefined ? 'client_id is required: the agent id' : 'client_id must be the agent id';
      return oauthError(400, 'invalid_client_metadata', message);
    }
    if (agent.securityProfile === 'SHARED_SECRET') {
      return body.jwks === undefined ? {} : oauthError(400, 'invalid_client_metadata', "The agent's security profile is SHARED_SECRET: send no jwks");
    }
    return rsaCredential(body.jwks);
  }

  function rsaCredential(jwks: unknown): Credential | Reply {
    const keys = isPlainObject(jwks) ? jwks.keys : undefined;
    if (!Array.isArray(keys) || keys.length !== 1 || !isPlainObject(keys[0])) {
      return oauthError(400, 'invalid_client_metadata', "The agent's security profile is RSA_3072: send jwks.keys with one 3072-bit RSA public key");
    }
    const key = rsaKeyFromJwk(keys[0], 3072);
    return typeof key === 'string' ? oauthError(400, 'invalid_client_metadata', key) : { publicKey: key, kid: keys[0].kid as string };
  }

  async function register(request: SandboxRequest): Promise<Reply> {
    const iat = bearerToken(request);
    if (iat === undefined) return invalidToken('Authorization: Bearer <initial access token> is required');
    const checked = state.checkIat(iat);
    if ('problem' in checked) {
      return invalidToken(
        checked.problem === 'expired'
          ? `The initial access token (IAT) expired at ${checked.expiredAt?.toISOString()}: download a new boarding configuration`
          : IAT_PROBLEMS[checked.problem],
      );
    }
    const credential = readCredential(checked.agent, request, false);
    if (isReply(credential)) return credential;
    return registrationReply(201, checked.agent, state.onboard(checked.agent, checked.jti, credential));
  }

  async function rotate(request: SandboxRequest, [clientId]: string[]): Promise<Reply> {
    const rat = bearerToken(request);
    if (rat === undefined) return invalidToken('Authorization: Bearer <registration access token> is required');
    const agent = state.get(clientId);
    const registration = agent && state.registrationByRat(agent, rat);
    if (!agent || !registration) {
      return invalidToken('Unknown or revoked registration access token for this client (offboarding revokes them)');
    }
    if (state.isSuperseded(agent, registration)) {
      return invalidToken('This registration access token was replaced by a newer registration that has been used: use the newest one');
    }
    const credential = readCredential(agent, request, true);
    if (isReply(credential)) return credential;
    return registrationReply(200, agent, state.rotate(agent, registration, credential));
  }

  // --- agent side: tokens -----------------------------------------------------

  async function issueToken(request: SandboxRequest): Promise<Reply> {
    if (mediaType(request) !== 'application/x-www-form-urlencoded') {
      return oauthError(400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
    }
    const form = new URLSearchParams(request.body.toString('utf8'));
    if (form.get('grant_type') !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials');
    if (form.get('client_assertion_type') !== JWT_BEARER) return oauthError(400, 'invalid_request', `client_assertion_type must be ${JWT_BEARER}`);
    const assertion = form.get('client_assertion');
    if (!assertion) return oauthError(400, 'invalid_request', 'client_assertion is required');

    const checked = await checkClientAssertion(state, assertion, form.get('client_id'));
    if (!checked.ok) return oauthError(401, 'invalid_client', checked.description);
    const { agent, registration } = checked;
    const generation = agent.generation;
    const lifetime = context.lifetimes.agentToken;
    const issued = await issuer.issue(
      {
        sub: agent.id,
        client_id: agent.id,
        cid: agent.id,
        azp: agent.id,
        grant_type: 'client_credentials',
        scope: [AGENT_SCOPE],
        aud: ['southgate'],
        ten: state.tenant,
        schemas: ['urn:siemens:mindsphere:v1'],
      },
      lifetime,
    );
    // Offboarded or deleted while the token was being signed.
    if (state.get(agent.id) !== agent || agent.generation !== generation) return oauthError(401, 'invalid_client', 'The agent was offboarded');
    state.tokenIssued(agent, registration, issued.jti, issued.exp * 1000);
    return jsonReply(
      200,
      { access_token: issued.token, token_type: 'Bearer', expires_in: lifetime, jti: issued.jti, scope: AGENT_SCOPE },
      { 'cache-control': 'no-store' },
    );
  }

  async function tokenKey(): Promise<Reply> {
    const { kid, publicKey } = await issuer.publicKey();
    const { kty, n, e } = publicKey.export({ format: 'jwk' });
    // One line, no breaks: the form the real service sends (the SDK's fixtures), which the SDK re-wraps itself.
    const value = publicKey.export({ format: 'pem', type: 'spki' }).toString().replace(/\r?\n/g, '');
    return jsonReply(200, { kty, e, n, kid, alg: 'RS256', use: 'sig', value });
  }

  /** The agent whose active access token the request carries, or undefined. */
  async function tokenAgent(request: SandboxRequest): Promise<SandboxAgentRecord | undefined> {
    const token = bearerToken(request);
    const claims = token === undefined ? undefined : await issuer.verify(token);
    const agent = typeof claims?.sub === 'string' ? state.get(claims.sub) : undefined;
    return agent && typeof claims?.jti === 'string' && state.tokenActive(agent, claims.jti) ? agent : undefined;
  }

  // --- agent side: data source configuration --------------------------------

  function dataSourceReply(agent: SandboxAgentRecord): Reply {
    const configuration = agent.dataSourceConfiguration ?? { configurationId: '', dataSources: [], eTag: 0 };
    const { configurationId, dataSources, eTag } = configuration;
    return jsonReply(200, { id: agent.id, eTag: String(eTag), configurationId, dataSources }, { etag: `"${eTag}"` });
  }

  /**
   * An app (or user) token's problem for the Agent Management API: 401 when it
   * is not a valid one, 403 when it lacks the Agent Management scope; else undefined.
   */
  async function appTokenProblem(request: SandboxRequest): Promise<Reply | undefined> {
    const token = bearerToken(request);
    const claims = token === undefined ? undefined : await verifyAppToken(token);
    if (!claims) return invalidToken('Missing, expired or revoked app (or user) access token');
    const scopes = Array.isArray(claims.scope) ? claims.scope : String(claims.scope ?? '').split(' ');
    if (!scopes.includes(AGENT_MANAGEMENT_SCOPE)) return apiError(403, `The token lacks the scope ${AGENT_MANAGEMENT_SCOPE}`);
    return undefined;
  }

  /** The data source configuration: the agent's own token, or an app token with the Agent Management scope. */
  function withAgentOrAppToken(handler: (request: SandboxRequest, agent: SandboxAgentRecord) => Reply): Handler {
    return async (request, [agentId]) => {
      const tokenOwner = await tokenAgent(request);
      if (tokenOwner) {
        if (tokenOwner.id !== agentId) return apiError(403, 'The access token belongs to another agent');
        return handler(request, tokenOwner);
      }
      const problem = await appTokenProblem(request);
      if (problem) return problem.status === 401 ? invalidToken('Missing, expired or revoked agent (or app) access token') : problem;
      const agent = state.get(agentId);
      return agent ? handler(request, agent) : apiError(404, `Agent not found: ${agentId}`);
    };
  }

  const getDataSources = withAgentOrAppToken((_request, agent) => dataSourceReply(agent));

  const putDataSources = withAgentOrAppToken((request, agent) => {
    const current = agent.dataSourceConfiguration?.eTag ?? 0;
    const precondition = checkIfMatch(request, current);
    if (precondition) return precondition;
    if (mediaType(request) !== 'application/json') return apiError(400, 'Content-Type must be application/json');
    const configuration = checkDataSourceConfiguration(jsonObjectBody(request));
    if (typeof configuration === 'string') return apiError(400, configuration);
    agent.dataSourceConfiguration = { ...configuration, eTag: current + 1 };
    return dataSourceReply(agent);
  });

  // --- app side ---------------------------------------------------------------

  function withAppToken(handler: (request: SandboxRequest, agent: SandboxAgentRecord) => Reply): Handler {
    return async (request, [agentId]) => {
      const problem = await appTokenProblem(request);
      if (problem) return problem;
      const agent = state.get(agentId);
      return agent ? handler(request, agent) : apiError(404, `Agent not found: ${agentId}`);
    };
  }

  const agentReply = (status: number, agent: SandboxAgentRecord): Reply =>
    jsonReply(status, state.view(agent), { etag: `"${agent.eTag}"`, location: `${context.url}${BASE}/agents/${agent.id}` });

  async function createAgent(request: SandboxRequest): Promise<Reply> {
    const problem = await appTokenProblem(request);
    if (problem) return problem;
    if (mediaType(request) !== 'application/json') return apiError(400, 'Content-Type must be application/json');
    const fields = checkAgentFields(jsonObjectBody(request), true);
    if (typeof fields === 'string') return apiError(400, fields);
    if (state.nameTaken(fields.name)) return apiError(409, `An agent named "${fields.name}" exists already in this tenant`);
    return agentReply(201, state.createAgent(fields));
  }

  const getAgent = withAppToken((_request, agent) => agentReply(200, agent));

  const updateAgent = withAppToken((request, agent) => {
    const precondition = checkIfMatch(request, agent.eTag);
    if (precondition) return precondition;
    if (mediaType(request) !== 'application/json') return apiError(400, 'Content-Type must be application/json');
    const fields = checkAgentFields(jsonObjectBody(request));
    if (typeof fields === 'string') return apiError(400, fields);
    if (fields.entityId !== undefined && fields.entityId !== agent.entityId) return apiError(400, 'entityId cannot be changed');
    const securityProfile = fields.securityProfile ?? agent.securityProfile;
    if (securityProfile !== agent.securityProfile && agent.boarding !== 'NOT_ONBOARDED') {
      return apiError(409, 'The security profile of an onboarded agent cannot change: offboard it first');
    }
    if (state.nameTaken(fields.name, agent.id)) return apiError(409, `An agent named "${fields.name}" exists already in this tenant`);
    state.updateAgent(agent, { name: fields.name, securityProfile, entityId: agent.entityId });
    return agentReply(200, agent);
  });

  const deleteAgent = withAppToken((request, agent) => {
    const precondition = checkIfMatch(request, agent.eTag);
    if (precondition) return precondition;
    state.deleteAgent(agent);
    return emptyReply(204);
  });

  const boardingConfiguration = withAppToken((_request, agent) =>
    agent.boarding === 'NOT_ONBOARDED'
      ? jsonReply(200, state.boardingConfiguration(agent))
      : apiError(409, 'The agent is onboarded: offboard it to get a new boarding configuration'),
  );

  const boardingStatus = withAppToken((_request, agent) => jsonReply(200, { status: agent.boarding }));

  const offboard = withAppToken((_request, agent) => {
    state.offboard(agent);
    return jsonReply(200, { status: agent.boarding });
  });

  const onlineStatus = withAppToken((_request, agent) => jsonReply(200, state.onlineStatus(agent)));

  // --- programmatic access for tests ------------------------------------------

  function mustGet(agentId: string): SandboxAgentRecord {
    const agent = state.get(agentId);
    if (!agent) throw new Error(`no sandbox agent with id "${agentId}"`);
    return agent;
  }

  const agents: SandboxAgents = {
    create(options = {}) {
      const fields = checkAgentFields({ ...options, name: options.name ?? 'default' });
      if (typeof fields === 'string') throw new TypeError(fields);
      if (options.name !== undefined && state.nameTaken(options.name)) throw new Error(`an agent named "${options.name}" exists already`);
      return state.view(state.createAgent({ ...fields, name: options.name }));
    },
    boardingConfiguration(agentId) {
      const agent = mustGet(agentId);
      if (agent.boarding !== 'NOT_ONBOARDED') throw new Error(`agent "${agentId}" is onboarded: offboard it first`);
      return state.boardingConfiguration(agent);
    },
    status: (agentId) => state.statusView(mustGet(agentId)),
    offboard: (agentId) => state.offboard(mustGet(agentId)),
    get tenant() {
      return state.tenant;
    },
  };

  const route = (endpoint: Route['endpoint'], path: string, methods: Route['methods']): Route => ({
    endpoint,
    path: new RegExp(`^${BASE}${path}$`),
    methods,
    clock: now,
  });

  return {
    name: 'insights-hub-agent',
    agents,
    clock,
    routes: [
      route('agents.register', '/register', { POST: register }),
      route('agents.rotate', `/register/${ID}`, { PUT: rotate }),
      route('agents.token', '/oauth/token', { POST: issueToken }),
      route('agents.tokenKey', '/oauth/token_key', { GET: tokenKey }),
      route('agents.dataSourceConfig', `/agents/${ID}/dataSourceConfiguration`, { GET: getDataSources, PUT: putDataSources }),
      route('agents.admin', '/agents', { POST: createAgent }),
      route('agents.admin', `/agents/${ID}`, { GET: getAgent, PUT: updateAgent, DELETE: deleteAgent }),
      route('agents.admin', `/agents/${ID}/boarding/configuration`, { GET: boardingConfiguration }),
      route('agents.admin', `/agents/${ID}/boarding/status`, { GET: boardingStatus }),
      route('agents.admin', `/agents/${ID}/boarding/offboard`, { POST: offboard }),
      route('agents.admin', `/agents/${ID}/status`, { GET: onlineStatus }),
    ],
    authenticates: async (request) => (await tokenAgent(request)) !== undefined,
    revoke: () => issuer.rotate(),
    settle: () => issuer.settle(),
  };
}

function isReply(value: Credential | Reply): value is Reply {
  return 'status' in value;
}

/** 400 without a usable If-Match, 412 when it is not the current eTag, else undefined. */
function checkIfMatch(request: SandboxRequest, current: number): Reply | undefined {
  const eTag = parseIfMatch(header(request, 'if-match'));
  if (eTag === undefined) return apiError(400, 'If-Match is required: the current eTag');
  if (Number.isNaN(eTag)) return apiError(400, 'If-Match must be one numeric eTag, e.g. "3"');
  if (eTag !== current) return apiError(412, `The eTag ${eTag} is stale: the current one is ${current}`);
  return undefined;
}

/** {name, securityProfile?, entityId} of a create (entityId required) or update, or the message of a 400. */
function checkAgentFields(
  body: unknown,
  entityIdRequired = false,
): { name: string; securityProfile?: SecurityProfile | undefined; entityId?: string | undefined } | string {
  if (!isPlainObject(body)) return 'The request body must be a JSON object';
  if (entityIdRequired && body.entityId === undefined) return 'entityId is required: the id of the asset the agent belongs to (Asset Manager)';
  if (typeof body.name !== 'string' || body.name.trim() === '') return 'name is required (a non-empty string)';
  if (body.name.length > 128) return 'name may have at most 128 characters';
  if (body.securityProfile !== undefined && !SECURITY_PROFILES.includes(body.securityProfile as SecurityProfile)) {
    return `securityProfile must be one of ${SECURITY_PROFILES.join(', ')}`;
  }
  if (body.entityId !== undefined && (typeof body.entityId !== 'string' || body.entityId === '')) return 'entityId must be a non-empty string';
  return {
    name: body.name,
    securityProfile: body.securityProfile as SecurityProfile | undefined,
    entityId: body.entityId as string | undefined,
  };
}
