import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPair, randomUUID, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT, jwtVerify } from 'jose';
import { startSandbox, DEFAULT_LIFETIMES, type BoardingConfiguration, type Sandbox, type SecurityProfile } from '../../src/sandbox/index.js';
import { insightsHubToken, jwtClaims, jwtHeader, postJson } from './helpers.js';

// Bodies are read loosely: the assertions say what they must hold.
type Body = Record<string, any>;

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const DAY_MS = 24 * 3600 * 1000;
const generateRsaKeyPair = promisify(generateKeyPair);

interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/** What an agent holds after onboarding or rotation. */
interface Credentials {
  clientId: string;
  secret?: string;
  privateKey?: KeyObject | undefined;
  rat: string;
  registration: Body;
}

describe('sandbox: Insights Hub agents (Agent Management)', () => {
  let sandbox: Sandbox;
  let base: string;
  let appToken: string;
  /** 3072-bit pairs, generated once (slow), reused by every test. */
  let rsa: KeyPair[];
  let rsa2048: KeyPair;

  before(async function () {
    this.timeout(60_000);
    const keys = Promise.all([...[1, 2, 3].map(() => generateRsaKeyPair('rsa', { modulusLength: 3072 })), generateRsaKeyPair('rsa', { modulusLength: 2048 })]);
    sandbox = await startSandbox();
    base = `${sandbox.url}/api/agentmanagement/v3`;
    appToken = await insightsHubToken(sandbox);
    const pairs = await keys;
    rsa = pairs.slice(0, 3);
    rsa2048 = pairs[3];
  });
  after(() => sandbox.stop());
  afterEach(() => {
    Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES);
    sandbox.clockSkewMs = 0;
    sandbox.clearFaults();
    sandbox.resetCalls();
  });

  // --- small clients, written from docs/protocols.md, Insights Hub agents ---------------------------

  const json = async (response: Response): Promise<Body> => (await response.json()) as Body;
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const app = (extra: Record<string, string> = {}): Record<string, string> => ({ ...bearer(appToken), ...extra });

  function jwks(pair: KeyPair, kid = randomUUID()): Body {
    const { kty, n, e } = pair.publicKey.export({ format: 'jwk' });
    return { keys: [{ kty, e, n, kid }] };
  }

  function registerRequest(iat: string, body: unknown): Promise<Response> {
    return postJson(`${base}/register`, body, bearer(iat));
  }

  function rotateRequest(clientId: string, rat: string, body: unknown): Promise<Response> {
    return fetch(`${base}/register/${clientId}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...bearer(rat) },
      body: JSON.stringify(body),
    });
  }

  function credentialsFrom(registration: Body, privateKey?: KeyObject): Credentials {
    return { clientId: registration.client_id, secret: registration.client_secret, privateKey, rat: registration.registration_access_token, registration };
  }

  /** Creates an agent and onboards it over HTTP. */
  async function onboard(securityProfile: SecurityProfile = 'SHARED_SECRET', pair = rsa[0]): Promise<Credentials> {
    const agent = sandbox.agents.create({ securityProfile });
    const boarding = sandbox.agents.boardingConfiguration(agent.id);
    const response = await registerRequest(boarding.content.iat, securityProfile === 'SHARED_SECRET' ? {} : { jwks: jwks(pair) });
    assert.equal(response.status, 201);
    return credentialsFrom(await json(response), securityProfile === 'RSA_3072' ? pair.privateKey : undefined);
  }

  async function rotate(credentials: Credentials, pair?: KeyPair, rat = credentials.rat): Promise<Credentials> {
    const body = pair ? { client_id: credentials.clientId, jwks: jwks(pair) } : { client_id: credentials.clientId };
    const response = await rotateRequest(credentials.clientId, rat, body);
    assert.equal(response.status, 200, JSON.stringify(await response.clone().json()));
    return credentialsFrom(await json(response), pair?.privateKey);
  }

  interface AssertionOptions {
    /** Claims to replace; undefined removes a claim. */
    claims?: Record<string, unknown>;
    alg?: string;
    /** The "now" of the claims, epoch seconds (default: the real clock). */
    now?: number;
    /** Sign with this secret instead of the agent's. */
    secret?: string;
  }

  async function assertion(credentials: Credentials, options: AssertionOptions = {}): Promise<string> {
    const now = options.now ?? Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: credentials.clientId,
      sub: credentials.clientId,
      aud: ['southgate'],
      iat: now,
      nbf: now,
      exp: now + 3600,
      jti: randomUUID(),
      schemas: ['urn:siemens:mindsphere:v1'],
      ten: sandbox.agents.tenant,
      ...options.claims,
    };
    const secret = options.secret ?? credentials.secret;
    const key = secret !== undefined ? new TextEncoder().encode(secret) : credentials.privateKey!;
    const alg = options.alg ?? (secret !== undefined ? 'HS256' : 'RS256');
    return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
  }

  function tokenRequest(clientAssertion: string, fields: Record<string, string> = {}): Promise<Response> {
    return fetch(`${base}/oauth/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: clientAssertion, ...fields }),
    });
  }

  async function agentToken(credentials: Credentials, options: AssertionOptions = {}): Promise<string> {
    const response = await tokenRequest(await assertion(credentials, options));
    const body = await json(response);
    assert.equal(response.status, 200, JSON.stringify(body));
    return body.access_token as string;
  }

  /** Asserts a 401 invalid_client whose description matches. */
  async function assertInvalidClient(response: Response, description: RegExp): Promise<void> {
    const body = await json(response);
    assert.equal(response.status, 401, JSON.stringify(body));
    assert.equal(body.error, 'invalid_client');
    assert.match(body.error_description, description);
  }

  const dataSourcesUrl = (agentId: string): string => `${base}/agents/${agentId}/dataSourceConfiguration`;

  function putDataSources(agentId: string, token: string, body: unknown, ifMatch?: string): Promise<Response> {
    return fetch(dataSourcesUrl(agentId), {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...bearer(token), ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }) },
      body: JSON.stringify(body),
    });
  }

  const configuration = (type = 'DOUBLE'): Body => ({
    configurationId: 'config-1',
    dataSources: [
      {
        name: 'Press',
        description: 'hydraulic press',
        dataPoints: [
          { id: 'dp-temperature', name: 'Temperature', type, unit: '°C' },
          { id: 'dp-running', name: 'Running', type: 'BOOLEAN', unit: '', description: 'motor on' },
        ],
      },
    ],
  });

  // --- onboarding ---------------------------------------------------------------

  describe('onboarding', () => {
    it('boarding configuration: base URL, a signed IAT valid 7 days, profile, client id, tenant', () => {
      const agent = sandbox.agents.create({ securityProfile: 'RSA_3072' });
      const boarding: BoardingConfiguration = sandbox.agents.boardingConfiguration(agent.id);
      assert.deepEqual(Object.keys(boarding.content).sort(), ['baseUrl', 'clientCredentialProfile', 'clientId', 'iat', 'tenant']);
      assert.equal(boarding.content.baseUrl, sandbox.url);
      assert.deepEqual(boarding.content.clientCredentialProfile, ['RSA_3072']);
      assert.equal(boarding.content.clientId, agent.id);
      assert.equal(boarding.content.tenant, sandbox.agents.tenant);
      assert.equal(sandbox.agents.tenant, sandbox.demo.insightsHubApp.hostTenant);
      assert.equal(jwtHeader(boarding.content.iat).alg, 'RS256');
      const claims = jwtClaims(boarding.content.iat);
      assert.equal(claims.sub, agent.id);
      assert.equal((claims.exp as number) - (claims.iat as number), 7 * 24 * 3600);
      assert.equal(boarding.expiration, new Date((claims.exp as number) * 1000).toISOString());
      assert.deepEqual(sandbox.agents.status(agent.id), {
        boarding: 'NOT_ONBOARDED',
        online: 'OFFLINE',
        registrations: 0,
        activeRegistration: undefined,
        pendingRegistrations: 0,
        tokensIssued: 0,
      });
    });

    it('SHARED_SECRET: 201 with a secret, RAT, expiry and URI; ONBOARDING, then ONBOARDED after the first token', async () => {
      const agent = sandbox.agents.create();
      assert.equal(agent.securityProfile, 'SHARED_SECRET');
      const boarding = sandbox.agents.boardingConfiguration(agent.id);
      const before = Math.floor(Date.now() / 1000);
      const response = await registerRequest(boarding.content.iat, {});
      assert.equal(response.status, 201);
      const body = await json(response);
      assert.deepEqual(Object.keys(body).sort(), [
        'client_id',
        'client_secret',
        'client_secret_expires_at',
        'grant_types',
        'registration_access_token',
        'registration_client_uri',
        'token_endpoint_auth_method',
      ]);
      assert.equal(body.client_id, agent.id);
      assert.ok(body.client_secret.length >= 32);
      assert.ok(Math.abs(body.client_secret_expires_at - (before + 7 * 24 * 3600)) <= 2);
      assert.deepEqual(body.grant_types, ['client_credentials']);
      assert.equal(body.registration_client_uri, `${base}/register/${agent.id}`);
      assert.equal(body.token_endpoint_auth_method, 'client_secret_jwt');
      assert.equal(sandbox.agents.status(agent.id).boarding, 'ONBOARDING');
      assert.equal(sandbox.agents.status(agent.id).registrations, 1);
      const status = sandbox.agents.status(agent.id);
      assert.deepEqual(Object.keys(status.activeRegistration!).sort(), ['expiresAt', 'issuedAt', 'number', 'used']);
      assert.ok(!JSON.stringify(status).includes(body.client_secret));

      await agentToken(credentialsFrom(body));
      assert.equal(sandbox.agents.status(agent.id).boarding, 'ONBOARDED');
      assert.equal(sandbox.calls('agents.register'), 1);
      assert.equal(sandbox.calls('agents.token'), 1);
    });

    it('SHARED_SECRET: accepts {"client_id"} and refuses another client id (400)', async () => {
      const agent = sandbox.agents.create();
      const { iat } = sandbox.agents.boardingConfiguration(agent.id).content;
      const wrong = await registerRequest(iat, { client_id: 'someone-else' });
      assert.equal(wrong.status, 400);
      assert.equal((await json(wrong)).error, 'invalid_client_metadata');
      assert.equal((await registerRequest(iat, { client_id: agent.id })).status, 201);
    });

    it('RSA_3072: 201 without a secret, private_key_jwt; RS256 and RS384 assertions both work', async () => {
      const credentials = await onboard('RSA_3072', rsa[0]);
      assert.equal(credentials.registration.client_secret, undefined);
      assert.equal(credentials.registration.token_endpoint_auth_method, 'private_key_jwt');
      assert.equal(typeof credentials.registration.client_secret_expires_at, 'number');
      await agentToken(credentials, { alg: 'RS256' });
      await agentToken(credentials, { alg: 'RS384' });
      assert.equal(sandbox.agents.status(credentials.clientId).tokensIssued, 2);
    });

    it('RSA_3072: refuses a 2048-bit key, a missing jwks, and jwks for a SHARED_SECRET agent (400); the IAT stays usable', async () => {
      const agent = sandbox.agents.create({ securityProfile: 'RSA_3072' });
      const { iat } = sandbox.agents.boardingConfiguration(agent.id).content;
      const small = await registerRequest(iat, { jwks: jwks(rsa2048) });
      assert.equal(small.status, 400);
      const error = await json(small);
      assert.equal(error.error, 'invalid_client_metadata');
      assert.match(error.error_description, /3072-bit.*2048 bits/);
      assert.equal((await registerRequest(iat, {})).status, 400);
      const missingKid = jwks(rsa[1]);
      delete missingKid.keys[0].kid;
      assert.equal((await registerRequest(iat, { jwks: missingKid })).status, 400);
      assert.equal((await registerRequest(iat, { jwks: jwks(rsa[1]) })).status, 201);

      const shared = sandbox.agents.create();
      const sharedIat = sandbox.agents.boardingConfiguration(shared.id).content.iat;
      assert.equal((await registerRequest(sharedIat, { jwks: jwks(rsa[1]) })).status, 400);
    });

    it('IAT used twice: 401 "already used"', async () => {
      const agent = sandbox.agents.create();
      const { iat } = sandbox.agents.boardingConfiguration(agent.id).content;
      assert.equal((await registerRequest(iat, {})).status, 201);
      const again = await registerRequest(iat, {});
      assert.equal(again.status, 401);
      assert.match(again.headers.get('www-authenticate')!, /^Bearer error="invalid_token"/);
      const body = await json(again);
      assert.equal(body.error, 'invalid_token');
      assert.match(body.error_description, /already used/);
    });

    it('IAT expired: 401 saying when it expired (lifetime configurable)', async () => {
      sandbox.lifetimes.agentIat = 60;
      const agent = sandbox.agents.create();
      const boarding = sandbox.agents.boardingConfiguration(agent.id);
      assert.equal((jwtClaims(boarding.content.iat).exp as number) - (jwtClaims(boarding.content.iat).iat as number), 60);
      sandbox.clockSkewMs = 61_000;
      const response = await registerRequest(boarding.content.iat, {});
      assert.equal(response.status, 401);
      const body = await json(response);
      assert.match(body.error_description, /expired at .*download a new boarding configuration/);
      assert.ok(body.error_description.includes(boarding.expiration.slice(0, 19)));
      assert.ok(!body.error_description.includes(boarding.content.iat));
    });

    it('IAT missing, forged, or of a deleted agent: 401; a 2nd boarding configuration after onboarding: refused', async () => {
      const agent = sandbox.agents.create();
      const { iat } = sandbox.agents.boardingConfiguration(agent.id).content;
      const [head, , signature] = iat.split('.');
      const forgedClaims = Buffer.from(JSON.stringify({ ...jwtClaims(iat), sub: 'other' })).toString('base64url');
      for (const headers of [{}, bearer('garbage'), bearer(`${head}.${forgedClaims}.${signature}`)]) {
        assert.equal((await postJson(`${base}/register`, {}, headers)).status, 401);
      }
      const gone = sandbox.agents.create();
      const goneIat = sandbox.agents.boardingConfiguration(gone.id).content.iat;
      assert.equal((await fetch(`${base}/agents/${gone.id}`, { method: 'DELETE', headers: app({ 'if-match': '"0"' }) })).status, 204);
      const response = await registerRequest(goneIat, {});
      assert.equal(response.status, 401);
      assert.match((await json(response)).error_description, /no longer exists/);

      // One IAT per agent (the seed: generated when it is created or offboarded), not one per GET.
      const again = await fetch(`${base}/agents/${agent.id}/boarding/configuration`, { headers: app() });
      assert.equal((await json(again)).content.iat, iat);
      assert.equal(sandbox.agents.boardingConfiguration(agent.id).content.iat, iat);
      assert.equal((await registerRequest(iat, {})).status, 201);
      assert.throws(() => sandbox.agents.boardingConfiguration(agent.id), /onboarded/);
      // Offboarding generates a new IAT; the used one stays refused.
      sandbox.agents.offboard(agent.id);
      const fresh = sandbox.agents.boardingConfiguration(agent.id).content.iat;
      assert.notEqual(fresh, iat);
      const used = await registerRequest(iat, {});
      assert.equal(used.status, 401);
      assert.match((await json(used)).error_description, /already used/);

      // An IAT of an earlier generation, never used: void once the agent was offboarded.
      const other = sandbox.agents.create();
      const before = sandbox.agents.boardingConfiguration(other.id).content.iat;
      sandbox.agents.offboard(other.id);
      const stale = await registerRequest(before, {});
      assert.equal(stale.status, 401);
      assert.match((await json(stale)).error_description, /no longer valid/);
      assert.equal((await registerRequest(sandbox.agents.boardingConfiguration(other.id).content.iat, {})).status, 201);
    });

    it('an expired IAT is replaced by a new one when the boarding configuration is read', async () => {
      const agent = sandbox.agents.create();
      const first = sandbox.agents.boardingConfiguration(agent.id);
      // The agents' clock past the IAT's expiry, rather than waiting for it.
      sandbox.clockSkewMs = Date.parse(first.expiration) - Date.now() + 1000;
      const expired = await registerRequest(first.content.iat, {});
      assert.equal(expired.status, 401);
      const second = sandbox.agents.boardingConfiguration(agent.id);
      assert.notEqual(second.content.iat, first.content.iat);
      assert.ok(Date.parse(second.expiration) - Date.now() > 6 * DAY_MS);
      const registered = await registerRequest(second.content.iat, {});
      assert.equal(registered.status, 201, JSON.stringify(await registered.clone().json()));
    });
  });

  // --- rotation ---------------------------------------------------------------

  describe('rotation', () => {
    it('SHARED_SECRET: 200 with a new secret, RAT and expiry; the older work until the newer are first used', async () => {
      const first = await onboard();
      await agentToken(first);
      sandbox.lifetimes.agentClientSecret = 8 * 24 * 3600;
      const second = await rotate(first);
      assert.equal(second.clientId, first.clientId);
      assert.notEqual(second.secret, first.secret);
      assert.notEqual(second.rat, first.rat);
      assert.ok(second.registration.client_secret_expires_at > first.registration.client_secret_expires_at);
      assert.equal(second.registration.registration_client_uri, first.registration.registration_client_uri);
      assert.deepEqual(
        { registrations: 2, active: 1, pending: 1 },
        (({ registrations, activeRegistration, pendingRegistrations }) => ({
          registrations,
          active: activeRegistration!.number,
          pending: pendingRegistrations,
        }))(sandbox.agents.status(first.clientId)),
      );

      await agentToken(first); // the older secret still works
      await agentToken(second); // first use of the newer one …
      await assertInvalidClient(await tokenRequest(await assertion(first)), /newer registration/); // … retires the older
      const oldRat = await rotateRequest(first.clientId, first.rat, { client_id: first.clientId });
      assert.equal(oldRat.status, 401);
      assert.match((await json(oldRat)).error_description, /newer registration/);
      const status = sandbox.agents.status(first.clientId);
      assert.equal(status.activeRegistration!.number, 2);
      assert.equal(status.pendingRegistrations, 0);
    });

    it('a rotation with the newer RAT also retires the older credentials', async () => {
      const first = await onboard();
      const second = await rotate(first);
      const third = await rotate(second); // uses the 2nd RAT
      await assertInvalidClient(await tokenRequest(await assertion(first)), /newer registration/);
      await agentToken(second); // the 2nd still works: the 3rd is unused
      await agentToken(third);
      await assertInvalidClient(await tokenRequest(await assertion(second)), /newer registration/);
      assert.equal(sandbox.agents.status(first.clientId).registrations, 3);
    });

    it('dropResponse: the rotation is applied but its answer lost; retrying with the old RAT recovers', async () => {
      const first = await onboard();
      sandbox.fault('agents.rotate', { kind: 'dropResponse', times: 1 });
      await assert.rejects(rotateRequest(first.clientId, first.rat, { client_id: first.clientId }), TypeError);
      assert.equal(sandbox.agents.status(first.clientId).registrations, 2, 'the lost rotation was applied');
      await agentToken(first); // the old secret still works: the lost one was never used
      const recovered = await rotate(first); // the old RAT still works too
      await agentToken(recovered);
      await assertInvalidClient(await tokenRequest(await assertion(first)), /newer registration/);
      assert.equal(sandbox.calls('agents.rotate'), 2);
    });

    it('RSA_3072: a new 3072-bit key; the old key works until the new one is used', async () => {
      const first = await onboard('RSA_3072', rsa[0]);
      const small = await rotateRequest(first.clientId, first.rat, { client_id: first.clientId, jwks: jwks(rsa2048) });
      assert.equal(small.status, 400);
      assert.equal((await rotateRequest(first.clientId, first.rat, { client_id: first.clientId })).status, 400);
      const second = await rotate(first, rsa[1]);
      assert.equal(second.registration.client_secret, undefined);
      assert.equal(second.registration.token_endpoint_auth_method, 'private_key_jwt');
      await agentToken(first, { alg: 'RS384' });
      await agentToken(second, { alg: 'RS384' });
      await assertInvalidClient(await tokenRequest(await assertion(first)), /newer registration/);
    });

    it("refuses a missing or unknown RAT, another agent's path (401), and a body without client_id (400)", async () => {
      const first = await onboard();
      const other = await onboard();
      assert.equal((await fetch(`${base}/register/${first.clientId}`, { method: 'PUT', body: '{}' })).status, 401);
      assert.equal((await rotateRequest(first.clientId, 'not-a-rat', { client_id: first.clientId })).status, 401);
      assert.equal((await rotateRequest(other.clientId, first.rat, { client_id: other.clientId })).status, 401);
      const noClientId = await rotateRequest(first.clientId, first.rat, {});
      assert.equal(noClientId.status, 400);
      assert.equal((await rotateRequest(first.clientId, first.rat, { client_id: other.clientId })).status, 400);
      assert.equal(sandbox.agents.status(first.clientId).registrations, 1, 'refused rotations change nothing');
    });

    it('an expired secret: token 401 saying so; the RAT still rotates, and the new secret works', async () => {
      const first = await onboard();
      sandbox.clockSkewMs = 8 * DAY_MS;
      const skewedNow = Math.floor((Date.now() + sandbox.clockSkewMs) / 1000);
      await assertInvalidClient(await tokenRequest(await assertion(first, { now: skewedNow })), /client secret expired at .*rotate/);
      const second = await rotate(first);
      await agentToken(second, { now: skewedNow });
    });
  });

  // --- agent token --------------------------------------------------------------

  describe('agent token', () => {
    let shared: Credentials;
    let keyed: Credentials;

    before(async () => {
      shared = await onboard();
      keyed = await onboard('RSA_3072', rsa[2]);
    });

    it('200: an RS256 token for the agent, exp - iat = the lifetime, verifiable with token_key', async () => {
      const response = await tokenRequest(await assertion(shared));
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('cache-control'), 'no-store');
      const body = await json(response);
      assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'jti', 'scope', 'token_type']);
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.expires_in, 3600);
      assert.equal(body.scope, 'mdsp:core:DefaultAgent');
      const claims = jwtClaims(body.access_token);
      assert.equal((claims.exp as number) - (claims.iat as number), 3600);
      assert.equal(claims.sub, shared.clientId);
      assert.equal(claims.ten, sandbox.agents.tenant);
      assert.equal(claims.jti, body.jti);

      const keyResponse = await fetch(`${base}/oauth/token_key`);
      assert.equal(keyResponse.status, 200);
      const key = await json(keyResponse);
      assert.deepEqual(Object.keys(key).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use', 'value']);
      assert.equal(key.kid, jwtHeader(body.access_token).kid);
      // One line, as the real service sends it (the official SDK's fixtures); the SDK re-wraps it so.
      assert.match(key.value, /^-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=]+-----END PUBLIC KEY-----$/);
      const wrapped = key.value
        .replace('-----BEGIN PUBLIC KEY-----', '-----BEGIN PUBLIC KEY-----\n')
        .replace('-----END PUBLIC KEY-----', '\n-----END PUBLIC KEY-----');
      await jwtVerify(body.access_token, createPublicKey(wrapped), { algorithms: ['RS256'] });
      assert.equal(sandbox.calls('agents.tokenKey'), 1);
    });

    it('the token lifetime is configurable', async () => {
      sandbox.lifetimes.agentToken = 5;
      const body = await json(await tokenRequest(await assertion(keyed)));
      assert.equal(body.expires_in, 5);
      const claims = jwtClaims(body.access_token);
      assert.equal((claims.exp as number) - (claims.iat as number), 5);
    });

    it('400 to a malformed request: content type, grant_type, assertion type, no assertion', async () => {
      const good = await assertion(shared);
      const asJson = await postJson(`${base}/oauth/token`, { grant_type: 'client_credentials', client_assertion: good });
      assert.equal(asJson.status, 400);
      assert.equal((await json(asJson)).error, 'invalid_request');
      const password = await tokenRequest(good, { grant_type: 'password' });
      assert.equal(password.status, 400);
      assert.equal((await json(password)).error, 'unsupported_grant_type');
      assert.equal((await tokenRequest(good, { client_assertion_type: 'urn:other' })).status, 400);
      assert.equal((await tokenRequest('', {})).status, 400);
      await assertInvalidClient(await tokenRequest('not.a.jwt'), /not a signed JWT/);
      await assertInvalidClient(await tokenRequest(good, { client_id: keyed.clientId }), /client_id/);
    });

    it('401 for an unknown client, a not-yet-onboarded agent, a wrong secret or key', async () => {
      await assertInvalidClient(await tokenRequest(await assertion({ ...shared, clientId: 'nobody' })), /Unknown client/);
      const fresh = sandbox.agents.create();
      await assertInvalidClient(await tokenRequest(await assertion({ ...shared, clientId: fresh.id })), /not onboarded/);
      await assertInvalidClient(await tokenRequest(await assertion(shared, { secret: 'not-the-secret-but-long-enough-to-sign' })), /signature/);
      await assertInvalidClient(await tokenRequest(await assertion({ ...keyed, privateKey: rsa[0].privateKey })), /signature/);
    });

    it('alg must suit the profile: HS256 for SHARED_SECRET, RS256/RS384 for RSA_3072', async () => {
      await assertInvalidClient(await tokenRequest(await assertion(shared, { alg: 'HS512' })), /alg "HS512".*HS256/);
      await assertInvalidClient(await tokenRequest(await assertion(keyed, { alg: 'RS512' })), /alg "RS512".*RS256 or RS384/);
      await assertInvalidClient(await tokenRequest(await assertion(keyed, { alg: 'PS256' })), /alg "PS256"/);
    });

    const now = (): number => Math.floor(Date.now() / 1000);
    const claimCases: Array<{ title: string; claims: () => Record<string, unknown>; expect: RegExp }> = [
      { title: 'iss missing', claims: () => ({ iss: undefined }), expect: /iss/ },
      { title: 'iss another agent', claims: () => ({ iss: 'another-agent' }), expect: /Unknown client/ },
      { title: 'sub not the client id', claims: () => ({ sub: 'someone' }), expect: /sub = iss/ },
      { title: 'aud missing', claims: () => ({ aud: undefined }), expect: /aud/ },
      { title: 'aud not southgate', claims: () => ({ aud: ['gateway'] }), expect: /aud/ },
      { title: 'ten another tenant', claims: () => ({ ten: 'othertenant' }), expect: /ten/ },
      { title: 'ten missing', claims: () => ({ ten: undefined }), expect: /ten/ },
      { title: 'schemas missing', claims: () => ({ schemas: undefined }), expect: /schemas/ },
      { title: 'schemas without the MindSphere schema', claims: () => ({ schemas: ['urn:other'] }), expect: /schemas/ },
      { title: 'jti missing', claims: () => ({ jti: undefined }), expect: /jti/ },
      { title: 'iat missing', claims: () => ({ iat: undefined }), expect: /iat/ },
      { title: 'iat in the future', claims: () => ({ iat: now() + 300 }), expect: /iat is \d+ s ahead.*clock/ },
      { title: 'nbf missing', claims: () => ({ nbf: undefined }), expect: /nbf/ },
      { title: 'nbf in the future', claims: () => ({ nbf: now() + 300 }), expect: /nbf is \d+ s ahead.*clock/ },
      { title: 'exp missing', claims: () => ({ exp: undefined }), expect: /exp/ },
      { title: 'exp passed', claims: () => ({ iat: now() - 600, nbf: now() - 600, exp: now() - 120 }), expect: /expired \d+ s ago.*clock/ },
      { title: 'exp more than 1 h ahead', claims: () => ({ exp: now() + 7200 }), expect: /at most 3600 s/ },
      { title: 'exp before iat', claims: () => ({ iat: now(), exp: now() - 10 }), expect: /after its iat/ },
      { title: 'exp - iat over 1 h', claims: () => ({ iat: now() - 7200, nbf: now() - 7200, exp: now() + 600 }), expect: /at most 3600 s/ },
    ];
    for (const { title, claims, expect } of claimCases) {
      it(`401 invalid_client: ${title}`, async () => {
        await assertInvalidClient(await tokenRequest(await assertion(shared, { claims: claims() })), expect);
      });
    }

    it('401 invalid_client: jti reused', async () => {
      const once = await assertion(shared);
      assert.equal((await tokenRequest(once)).status, 200);
      await assertInvalidClient(await tokenRequest(once), /jti was used before/);
    });

    it('accepts aud as a string or an array containing southgate, and times within 60 s of leeway', async () => {
      await agentToken(shared, { claims: { aud: 'southgate' } });
      await agentToken(shared, { claims: { aud: ['other', 'southgate'] } });
      await agentToken(shared, { claims: { iat: now() + 30, nbf: now() + 30 } });
      await agentToken(shared, { claims: { iat: now() - 3600, nbf: now() - 3600, exp: now() - 30 } });
    });
  });

  // --- clock skew ---------------------------------------------------------------

  describe('clock skew', () => {
    const dateOf = (response: Response): number => Date.parse(response.headers.get('date')!);

    it('the Date header of the agent endpoints shows the skewed clock, faults included; others keep the real one', async () => {
      const credentials = await onboard();
      const real = dateOf(await fetch(`${base}/oauth/token_key`));
      assert.ok(Math.abs(real - Date.now()) < 5000);
      sandbox.clockSkewMs = DAY_MS;
      for (const response of [
        await fetch(`${base}/oauth/token_key`),
        await tokenRequest(await assertion(credentials)), // 401: expired by the skewed clock
        await fetch(`${base}/agents/${credentials.clientId}`), // 401
      ]) {
        assert.ok(Math.abs(dateOf(response) - (Date.now() + DAY_MS)) < 5000, response.headers.get('date')!);
      }
      sandbox.fault('agents.token', { kind: 'status', status: 503, times: 1 });
      assert.ok(Math.abs(dateOf(await tokenRequest('x')) - (Date.now() + DAY_MS)) < 5000);
      const other = await fetch(`${sandbox.url}/__sandbox/echo`);
      assert.ok(Math.abs(dateOf(other) - Date.now()) < 5000);
    });

    it('a client clock behind or ahead is refused with a clock hint; one corrected by the Date header works', async () => {
      const credentials = await onboard();
      sandbox.clockSkewMs = -10 * 60 * 1000; // the platform is 10 min behind the client
      await assertInvalidClient(await tokenRequest(await assertion(credentials)), /iat is \d+ s ahead of the server's clock.*check the device's clock/);
      sandbox.clockSkewMs = 2 * 3600 * 1000; // 2 h ahead
      const refused = await tokenRequest(await assertion(credentials));
      await assertInvalidClient(refused, /expired .*server time .*check the device's clock/);
      const serverNow = Math.floor(dateOf(refused) / 1000);
      const token = await agentToken(credentials, { now: serverNow });
      assert.ok(Math.abs((jwtClaims(token).iat as number) * 1000 - (Date.now() + sandbox.clockSkewMs)) < 5000, 'stamped by the skewed clock');
      const dataSources = await fetch(dataSourcesUrl(credentials.clientId), { headers: bearer(token) });
      assert.equal(dataSources.status, 200, 'valid by the skewed clock');
    });

    it('clockSkewMs must be a finite number', () => {
      assert.throws(() => (sandbox.clockSkewMs = Number.NaN), TypeError);
      assert.equal(sandbox.clockSkewMs, 0);
    });
  });

  // --- data source configuration ----------------------------------------------

  describe('data source configuration', () => {
    it('starts empty with eTag "0"; PUT with If-Match increments it; a stale eTag gets 412', async () => {
      const credentials = await onboard();
      const token = await agentToken(credentials);
      const empty = await fetch(dataSourcesUrl(credentials.clientId), { headers: bearer(token) });
      assert.equal(empty.status, 200);
      assert.deepEqual(await json(empty), { id: credentials.clientId, eTag: '0', configurationId: '', dataSources: [] });

      const first = await putDataSources(credentials.clientId, token, configuration(), '"0"');
      assert.equal(first.status, 200);
      assert.equal(first.headers.get('etag'), '"1"');
      assert.deepEqual(await json(first), { id: credentials.clientId, eTag: '1', ...configuration() });
      assert.deepEqual(await json(await fetch(dataSourcesUrl(credentials.clientId), { headers: bearer(token) })), {
        id: credentials.clientId,
        eTag: '1',
        ...configuration(),
      });

      const stale = await putDataSources(credentials.clientId, token, configuration('INT'), '"0"');
      assert.equal(stale.status, 412);
      assert.equal(typeof (await json(stale)).message, 'string');
      const unquoted = await putDataSources(credentials.clientId, token, configuration('INT'), '1');
      assert.equal(unquoted.status, 200);
      assert.equal((await json(unquoted)).eTag, '2');
      assert.equal((await putDataSources(credentials.clientId, token, configuration())).status, 400, 'If-Match is required');
      assert.equal((await putDataSources(credentials.clientId, token, configuration(), '"abc"')).status, 400);
      assert.equal(sandbox.calls('agents.dataSourceConfig'), 7);
    });

    it('400 naming the field: a wrong type, a missing unit, configurationId, a duplicate data point id', async () => {
      const credentials = await onboard();
      const token = await agentToken(credentials);
      const cases: [Body, RegExp][] = [
        [configuration('FLOAT'), /dataSources\[0\]\.dataPoints\[0\]\.type must be one of INT, LONG, DOUBLE, BOOLEAN, STRING, BIG_STRING, TIMESTAMP/],
        [{ ...configuration(), configurationId: undefined }, /configurationId/],
        [{ configurationId: 'c', dataSources: [{ name: 'x', dataPoints: [{ id: 'a', name: 'a', type: 'INT' }] }] }, /dataPoints\[0\]\.unit/],
        [{ configurationId: 'c', dataSources: [{ dataPoints: [] }] }, /dataSources\[0\]\.name/],
        [
          { configurationId: 'c', dataSources: [{ name: 'x', dataPoints: [1, 2].map(() => ({ id: 'same', name: 'n', type: 'INT', unit: '' })) }] },
          /dataPoints\[1\]\.id "same" is not unique/,
        ],
      ];
      for (const [body, message] of cases) {
        const response = await putDataSources(credentials.clientId, token, body, '"0"');
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.match((await json(response)).message, message);
      }
    });

    it('accepts every documented data point type', async () => {
      const credentials = await onboard();
      const token = await agentToken(credentials);
      const types = ['INT', 'LONG', 'DOUBLE', 'BOOLEAN', 'STRING', 'BIG_STRING', 'TIMESTAMP'];
      const body = {
        configurationId: 'all-types',
        dataSources: [{ name: 'all', dataPoints: types.map((type) => ({ id: `dp-${type}`, name: type, type, unit: '' })) }],
      };
      assert.equal((await putDataSources(credentials.clientId, token, body, '0')).status, 200);
    });

    it("needs this agent's valid token or an app token: 401 without, with a foreign token, after offboarding or revocation; 403 for another agent", async () => {
      const mine = await onboard();
      const other = await onboard();
      const token = await agentToken(mine);
      const otherToken = await agentToken(other);
      const url = dataSourcesUrl(mine.clientId);
      assert.equal((await fetch(url)).status, 401);
      // An app token carries the Agent Management scope: the official SDK's Agent Management client calls with one.
      const withApp = await fetch(url, { headers: bearer(appToken) });
      assert.equal(withApp.status, 200);
      assert.equal((await json(withApp)).id, mine.clientId);
      const appPut = await putDataSources(mine.clientId, appToken, configuration(), '0');
      assert.equal(appPut.status, 200);
      assert.equal((await json(appPut)).eTag, '1');
      assert.equal((await fetch(dataSourcesUrl('0123456789abcdef0123456789abcdef'), { headers: bearer(appToken) })).status, 404);
      const dataTrailsToken = (
        await json(
          await fetch(`${sandbox.url}/archivist/iam/v1/appidp/token`, {
            method: 'POST',
            body: new URLSearchParams({
              grant_type: 'client_credentials',
              client_id: sandbox.demo.dataTrails.clientId,
              client_secret: sandbox.demo.dataTrails.clientSecret,
            }),
          }),
        )
      ).access_token as string;
      const foreignPlatform = await fetch(url, { headers: bearer(dataTrailsToken) });
      assert.equal(foreignPlatform.status, 401);
      assert.equal((await json(foreignPlatform)).error, 'invalid_token');
      const foreign = await fetch(url, { headers: bearer(otherToken) });
      assert.equal(foreign.status, 403);
      assert.equal(typeof (await json(foreign)).message, 'string');
      assert.equal((await putDataSources(mine.clientId, otherToken, configuration(), '0')).status, 403);

      sandbox.agents.offboard(other.clientId);
      assert.equal((await fetch(dataSourcesUrl(other.clientId), { headers: bearer(otherToken) })).status, 401);
      assert.equal((await fetch(url, { headers: bearer(token) })).status, 200);
      sandbox.revokeTokens();
      assert.equal((await fetch(url, { headers: bearer(token) })).status, 401);
      appToken = await insightsHubToken(sandbox); // revokeTokens() also revoked the app token
      assert.equal((await fetch(url, { headers: bearer(await agentToken(mine)) })).status, 200);
    });
  });

  // --- app side -----------------------------------------------------------------

  describe('app side (with an app token)', () => {
    const agentsUrl = (): string => `${base}/agents`;

    it('POST /agents: 201 {id, name, securityProfile, entityId, eTag}; 400 for bad fields; 409 for a taken name; 401 without an app token', async () => {
      const created = await postJson(agentsUrl(), { name: 'Press line 1', entityId: 'a1b2c3' }, app());
      assert.equal(created.status, 201);
      const agent = await json(created);
      assert.deepEqual(Object.keys(agent).sort(), ['eTag', 'entityId', 'id', 'name', 'securityProfile']);
      assert.match(agent.id, /^[0-9a-f]{32}$/);
      assert.deepEqual({ ...agent, id: undefined }, { id: undefined, name: 'Press line 1', securityProfile: 'SHARED_SECRET', entityId: 'a1b2c3', eTag: '0' });
      const keyed = await json(await postJson(agentsUrl(), { name: 'Press line 2', securityProfile: 'RSA_3072', entityId: 'a1b2c4' }, app()));
      assert.equal(keyed.securityProfile, 'RSA_3072');
      assert.equal(keyed.entityId, 'a1b2c4');

      assert.equal((await postJson(agentsUrl(), { name: 'x', securityProfile: 'RSA_2048', entityId: 'e1' }, app())).status, 400);
      const noName = await postJson(agentsUrl(), { securityProfile: 'RSA_3072', entityId: 'e1' }, app());
      assert.equal(noName.status, 400);
      assert.match((await json(noName)).message, /name/);
      // The API model makes entityId (the agent's asset) required.
      const noEntity = await postJson(agentsUrl(), { name: 'Press line 3' }, app());
      assert.equal(noEntity.status, 400);
      assert.match((await json(noEntity)).message, /entityId is required/);
      assert.equal((await postJson(agentsUrl(), { name: 'Press line 3', entityId: '' }, app())).status, 400);
      assert.equal((await postJson(agentsUrl(), { name: 'Press line 1', entityId: 'e2' }, app())).status, 409);
      assert.equal((await postJson(agentsUrl(), { name: 'y', entityId: 'e3' })).status, 401);
      assert.equal(
        (await postJson(agentsUrl(), { name: 'y', entityId: 'e3' }, bearer(await agentToken(await onboard())))).status,
        401,
        'an agent token is not an app token',
      );
    });

    it('GET, PUT and DELETE /agents/{id}: If-Match with the current eTag, 412 when stale, 404 when unknown', async () => {
      const agent = await json(await postJson(agentsUrl(), { name: 'Mixer', entityId: 'asset-mixer' }, app()));
      const url = `${agentsUrl()}/${agent.id}`;
      const got = await fetch(url, { headers: app() });
      assert.equal(got.status, 200);
      assert.deepEqual(await json(got), agent);
      assert.equal((await fetch(`${agentsUrl()}/nope`, { headers: app() })).status, 404);
      assert.equal((await fetch(url)).status, 401);

      const put = (body: unknown, ifMatch?: string): Promise<Response> =>
        fetch(url, {
          method: 'PUT',
          headers: app({ 'content-type': 'application/json', ...(ifMatch ? { 'if-match': ifMatch } : {}) }),
          body: JSON.stringify(body),
        });
      const renamed = await put({ name: 'Mixer 2', securityProfile: 'RSA_3072' }, '"0"');
      assert.equal(renamed.status, 200);
      assert.deepEqual(await json(renamed), { ...agent, name: 'Mixer 2', securityProfile: 'RSA_3072', eTag: '1' });
      assert.equal((await put({ name: 'Mixer 3' }, '"0"')).status, 412);
      assert.equal((await put({ name: 'Mixer 3' })).status, 400);
      assert.equal((await put({ name: 'Mixer 3', entityId: 'changed' }, '1')).status, 400);

      const remove = (ifMatch?: string): Promise<Response> => fetch(url, { method: 'DELETE', headers: app(ifMatch ? { 'if-match': ifMatch } : {}) });
      assert.equal((await remove('"0"')).status, 412);
      assert.equal((await remove()).status, 400);
      const deleted = await remove('"1"');
      assert.equal(deleted.status, 204);
      assert.equal(await deleted.text(), '');
      assert.equal((await fetch(url, { headers: app() })).status, 404);
      assert.equal((await remove('"1"')).status, 404);
    });

    it('the whole life over HTTP: boarding configuration, register, status, token, offboard, onboard again', async () => {
      const agent = await json(await postJson(agentsUrl(), { name: 'Conveyor', entityId: 'asset-conveyor' }, app()));
      const url = `${agentsUrl()}/${agent.id}`;
      const boardingStatus = async (): Promise<unknown> => (await json(await fetch(`${url}/boarding/status`, { headers: app() }))).status;
      assert.equal(await boardingStatus(), 'NOT_ONBOARDED');
      assert.equal((await fetch(`${url}/boarding/configuration`)).status, 401);
      const boardingResponse = await fetch(`${url}/boarding/configuration`, { headers: app() });
      assert.equal(boardingResponse.status, 200);
      const boarding = (await json(boardingResponse)) as BoardingConfiguration;
      assert.equal(boarding.content.clientId, agent.id);
      assert.equal(boarding.content.baseUrl, sandbox.url);

      const registered = await registerRequest(boarding.content.iat, { client_id: agent.id });
      assert.equal(registered.status, 201);
      const credentials = credentialsFrom(await json(registered));
      assert.equal(await boardingStatus(), 'ONBOARDING');
      const token = await agentToken(credentials);
      assert.equal(await boardingStatus(), 'ONBOARDED');
      const again = await fetch(`${url}/boarding/configuration`, { headers: app() });
      assert.equal(again.status, 409);
      assert.match((await json(again)).message, /offboard/);

      const offboarded = await fetch(`${url}/boarding/offboard`, { method: 'POST', headers: app() });
      assert.equal(offboarded.status, 200);
      assert.deepEqual(await json(offboarded), { status: 'NOT_ONBOARDED' });
      assert.equal(await boardingStatus(), 'NOT_ONBOARDED');
      await assertInvalidClient(await tokenRequest(await assertion(credentials)), /not onboarded/);
      assert.equal((await rotateRequest(agent.id, credentials.rat, { client_id: agent.id })).status, 401);
      assert.equal((await fetch(dataSourcesUrl(agent.id), { headers: bearer(token) })).status, 401);
      assert.equal(sandbox.agents.status(agent.id).registrations, 0);

      const fresh = (await json(await fetch(`${url}/boarding/configuration`, { headers: app() }))) as BoardingConfiguration;
      assert.notEqual(fresh.content.iat, boarding.content.iat, 'offboarding generates a new IAT');
      assert.equal((await registerRequest(fresh.content.iat, {})).status, 201);
      assert.equal(sandbox.calls('agents.admin'), 10);
    });

    it('GET /agents/{id}/status: OFFLINE since creation, ONLINE after a token, OFFLINE when it expires', async () => {
      const credentials = await onboard();
      const statusOf = async (): Promise<Body> => json(await fetch(`${base}/agents/${credentials.clientId}/status`, { headers: app() }));
      const offline = await statusOf();
      assert.equal(offline.status, 'OFFLINE');
      assert.ok(Math.abs(Date.parse(offline.since) - Date.now()) < 5000);
      const before = Date.now();
      await agentToken(credentials);
      const online = await statusOf();
      assert.equal(online.status, 'ONLINE');
      assert.ok(Date.parse(online.since) >= before - 1000);
      assert.equal(sandbox.agents.status(credentials.clientId).online, 'ONLINE');
      sandbox.clockSkewMs = 2 * 3600 * 1000;
      const later = await statusOf();
      assert.equal(later.status, 'OFFLINE');
      assert.ok(Math.abs(Date.parse(later.since) - (before + 3600 * 1000)) < 5000, 'offline since the token expired');
    });

    it('app-side calls for an unknown agent: 404 with {id, message}', async () => {
      for (const [method, path] of [
        ['GET', 'boarding/configuration'],
        ['GET', 'boarding/status'],
        ['POST', 'boarding/offboard'],
        ['GET', 'status'],
      ]) {
        const response = await fetch(`${base}/agents/0000/${path}`, { method, headers: app() });
        assert.equal(response.status, 404, path);
        const body = await json(response);
        assert.equal(typeof body.id, 'string');
        assert.match(body.message, /not found/);
      }
    });
  });

  // --- faults, counters, echo -------------------------------------------------------

  describe('faults and helpers', () => {
    it('dropResponse on the token endpoint: the token is issued (the agent is ONBOARDED), the client gets no answer', async () => {
      const credentials = await onboard();
      sandbox.fault('agents.token', { kind: 'dropResponse', times: 1 });
      await assert.rejects(tokenRequest(await assertion(credentials)), TypeError);
      const status = sandbox.agents.status(credentials.clientId);
      assert.equal(status.boarding, 'ONBOARDED');
      assert.equal(status.tokensIssued, 1);
      await agentToken(credentials);
    });

    it('dropResponse works for any endpoint, `times` times', async () => {
      sandbox.fault('sandbox.echo', { kind: 'dropResponse', times: 2 });
      await assert.rejects(fetch(`${sandbox.url}/__sandbox/echo`, { method: 'POST', body: 'x' }), TypeError);
      await assert.rejects(fetch(`${sandbox.url}/__sandbox/echo`), TypeError);
      assert.equal((await fetch(`${sandbox.url}/__sandbox/echo`)).status, 200);
      assert.equal(sandbox.calls('sandbox.echo'), 3);
      assert.throws(() => sandbox.fault('sandbox.echo', { kind: 'dropResponse', times: 0 }), TypeError);
    });

    it('status faults and counters apply per endpoint name', async () => {
      const credentials = await onboard();
      sandbox.resetCalls();
      sandbox.fault('agents.register', { kind: 'status', status: 503, headers: { 'retry-after': '1' }, times: 1 });
      const agent = sandbox.agents.create();
      const { iat } = sandbox.agents.boardingConfiguration(agent.id).content;
      assert.equal((await registerRequest(iat, {})).status, 503);
      assert.equal((await registerRequest(iat, {})).status, 201, 'the faulted call did not use the IAT');
      await agentToken(credentials);
      assert.equal(sandbox.calls('agents.register'), 2);
      assert.equal(sandbox.calls('agents.token'), 1);
      assert.equal(sandbox.calls('agents.rotate'), 0);
    });

    it('the echo endpoint recognises an agent token', async () => {
      const token = await agentToken(await onboard());
      const echo = await json(await fetch(`${sandbox.url}/__sandbox/echo`, { headers: bearer(token) }));
      assert.equal(echo.authenticated, 'insights-hub-agent');
    });

    it('sandbox.agents refuses unknown agents, bad profiles and taken names', () => {
      assert.throws(() => sandbox.agents.status('nope'), /no sandbox agent/);
      assert.throws(() => sandbox.agents.create({ securityProfile: 'RSA_2048' as SecurityProfile }), TypeError);
      sandbox.agents.create({ name: 'Unique name' });
      assert.throws(() => sandbox.agents.create({ name: 'Unique name' }), /exists already/);
    });
  });
});
