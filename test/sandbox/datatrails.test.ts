import assert from 'node:assert/strict';
import { startSandbox, DEFAULT_LIFETIMES, type DataTrailsApplication, type Sandbox } from '../../src/sandbox/index.js';
import { dataTrailsToken, dataTrailsTokenRequest, jwtClaims, jwtHeader, postJson } from './helpers.js';

describe('sandbox: DataTrails', () => {
  let sandbox: Sandbox;
  let token: string;
  let applicationsUrl: string;

  before(async () => {
    sandbox = await startSandbox();
    token = await dataTrailsToken(sandbox);
    applicationsUrl = `${sandbox.url}/archivist/iam/v1/applications`;
  });
  after(() => sandbox.stop());
  afterEach(() => {
    Object.assign(sandbox.lifetimes, DEFAULT_LIFETIMES);
    sandbox.dataTrailsApplications.clear();
    sandbox.dataTrailsApplications.quota = 20;
  });

  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const getJson = async (url: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(url, { headers: auth() });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const createApplication = (body: unknown): Promise<Response> => postJson(applicationsUrl, body, auth());

  describe('token', () => {
    it('issues an RS256 token for form-encoded client credentials', async () => {
      sandbox.lifetimes.dataTrailsToken = 120;
      const response = await dataTrailsTokenRequest(sandbox, sandbox.demo.dataTrails.clientId, sandbox.demo.dataTrails.clientSecret);
      assert.equal(response.status, 200);
      const body = (await response.json()) as { access_token: string; token_type: string; expires_in: number };
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.expires_in, 120);
      assert.equal(jwtHeader(body.access_token).alg, 'RS256');
      assert.equal(jwtClaims(body.access_token).sub, sandbox.demo.dataTrails.clientId);
    });

    it('answers 400 to JSON or a wrong grant type, 401 to a wrong secret', async () => {
      const { clientId, clientSecret } = sandbox.demo.dataTrails;
      const asJson = await postJson(`${sandbox.url}/archivist/iam/v1/appidp/token`, {
        grant_type: 'client_credentials',
        client_id: clientId,
        client_secret: clientSecret,
      });
      assert.equal(asJson.status, 400);
      const wrongGrant = await fetch(`${sandbox.url}/archivist/iam/v1/appidp/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'password', client_id: clientId, client_secret: clientSecret }),
      });
      assert.equal(wrongGrant.status, 400);
      assert.equal((await dataTrailsTokenRequest(sandbox, clientId, 'wrong-secret')).status, 401);
    });
  });

  describe('assets and events', () => {
    it('creates, lists and reads assets and their events with a bearer token', async () => {
      const assets = `${sandbox.url}/archivist/v2/assets`;
      const created = await postJson(assets, { behaviours: ['RecordEvidence'], attributes: { arc_display_name: 'Pump 1' } }, auth());
      assert.equal(created.status, 200);
      const asset = (await created.json()) as { identity: string; attributes: Record<string, string> };
      assert.match(asset.identity, /^assets\/[0-9a-f-]{36}$/);
      const { body: listed } = await getJson(assets);
      assert.deepEqual(
        (listed.assets as Array<{ identity: string }>).map((a) => a.identity),
        [asset.identity],
      );
      const { status, body: read } = await getJson(`${sandbox.url}/archivist/v2/${asset.identity}`);
      assert.equal(status, 200);
      assert.deepEqual(read.attributes, { arc_display_name: 'Pump 1' });

      const events = `${sandbox.url}/archivist/v2/${asset.identity}/events`;
      const event = await postJson(events, { operation: 'Record', behaviour: 'RecordEvidence', event_attributes: { note: 'hi' } }, auth());
      assert.equal(event.status, 200);
      const { body: eventList } = await getJson(events);
      assert.equal((eventList.events as unknown[]).length, 1);
      assert.equal((await postJson(events, { operation: 'Record' }, auth())).status, 400);
      assert.equal((await getJson(`${assets}/00000000-0000-4000-8000-000000000000`)).status, 404);
    });

    it('answers with the fields of v2AssetResponse (assetsv2.swagger.json): chain_id, no storage_integrity or principal', async () => {
      const created = await postJson(`${sandbox.url}/archivist/v2/assets`, { attributes: { arc_display_name: 'Fence' }, public: true }, auth());
      const asset = (await created.json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(asset).sort(), [
        'at_time',
        'attributes',
        'behaviours',
        'chain_id',
        'confirmation_status',
        'identity',
        'owner',
        'proof_mechanism',
        'public',
        'tenant_identity',
        'tracked',
      ]);
      assert.equal(typeof asset.chain_id, 'string');
      assert.equal(asset.public, true);
      assert.equal((await postJson(`${sandbox.url}/archivist/v2/assets`, { attributes: {}, proof_mechanism: 'BLOCKCHAIN' }, auth())).status, 400);
    });

    it('lists assets by the filters of GET /archivist/v2/assets, counts them in x-total-count, and refuses what it does not imitate', async () => {
      const assets = `${sandbox.url}/archivist/v2/assets`;
      const make = async (body: Record<string, unknown>): Promise<string> =>
        ((await (await postJson(assets, body, auth())).json()) as { identity: string }).identity;
      const pumpA = await make({ attributes: { arc_display_type: 'Pump', site: 'north' } });
      const pumpB = await make({ attributes: { arc_display_type: 'Pump', site: 'south' }, public: true });
      const valve = await make({ attributes: { arc_display_type: 'Valve', site: 'north' }, proof_mechanism: 'MERKLE_LOG', chain_id: '42' });
      const list = async (query: string) => {
        const response = await fetch(`${assets}?${query}`, { headers: auth() });
        const body = (await response.json()) as { assets?: Array<{ identity: string }>; next_page_token?: string; message?: string };
        return { status: response.status, total: response.headers.get('x-total-count'), body, ids: (body.assets ?? []).map((a) => a.identity) };
      };
      // The spec's map syntax, and the dotted one the Python SDK sends.
      for (const query of ['attributes[arc_display_type]=Pump', 'attributes.arc_display_type=Pump']) {
        const pumps = await list(query);
        assert.equal(pumps.status, 200);
        assert.ok([pumpA, pumpB].every((id) => pumps.ids.includes(id)) && !pumps.ids.includes(valve), query);
      }
      assert.deepEqual((await list('attributes[arc_display_type]=Pump&attributes[site]=north')).ids, [pumpA], 'every filter must match');
      assert.deepEqual((await list('attributes[arc_display_type]=Pump&privacy=PUBLIC')).ids, [pumpB]);
      assert.deepEqual((await list('attributes[arc_display_type]=Pump&privacy=RESTRICTED')).ids, [pumpA]);
      assert.deepEqual((await list('proof_mechanism=MERKLE_LOG&chain_id=42')).ids, [valve]);
      assert.deepEqual((await list('attributes[site]=north&tracked=TRACKED&confirmation_status=PENDING&order_by=DEFAULT')).ids, [pumpA, valve]);
      assert.deepEqual((await list('attributes[site]=north&confirmation_status=CONFIRMED')).ids, []);

      // x-total-count counts every match, not the page; the page token carries the filters.
      const first = await list('attributes[site]=north&page_size=1');
      assert.deepEqual([first.ids, first.total], [[pumpA], '2']);
      const second = await list(`page_token=${encodeURIComponent(first.body.next_page_token!)}`);
      assert.deepEqual([second.ids, second.total, second.body.next_page_token], [[valve], '2', '']);
      assert.equal(
        (await list(`page_token=${encodeURIComponent(first.body.next_page_token!)}&attributes[site]=north`)).status,
        400,
        'a filter again with the token',
      );

      for (const [query, message] of [
        ['order_by=SIMPLEHASHV1', /does not imitate order_by=SIMPLEHASHV1/],
        ['order_by=NEWEST', /order_by must be one of DEFAULT, SIMPLEHASHV1, SIMPLEHASHV2/],
        ['tracked=YES', /tracked must be one of/],
        ['privacy=SECRET', /privacy must be one of/],
      ] as const) {
        const refused = await list(query);
        assert.equal(refused.status, 400, query);
        assert.match(refused.body.message!, message);
      }
    });

    it('a rateLimited fault answers 429 with Archivist-Rate-Limit-Reset, on DataTrails endpoints only', async () => {
      sandbox.fault('dataTrails.assets', { kind: 'rateLimited', resetSeconds: 2.5, times: 1 });
      const limited = await fetch(`${sandbox.url}/archivist/v2/assets`, { headers: auth() });
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('archivist-rate-limit-reset'), '2.5');
      assert.equal(((await limited.json()) as { code: number }).code, 8, 'RESOURCE_EXHAUSTED');
      assert.equal((await fetch(`${sandbox.url}/archivist/v2/assets`, { headers: auth() })).status, 200, 'times: 1');
      assert.throws(() => sandbox.fault('mbp.devices', { kind: 'rateLimited', resetSeconds: 1 }), /imitates DataTrails' 429/);
      assert.throws(() => sandbox.fault('dataTrails.applications', { kind: 'rateLimited', resetSeconds: -1 }), /resetSeconds must be a number >= 0/);
    });

    it('answers 401 without a valid token', async () => {
      const response = await fetch(`${sandbox.url}/archivist/v2/assets`);
      assert.equal(response.status, 401);
      assert.equal(((await response.json()) as { code: number }).code, 16);
      const revokedLater = await dataTrailsToken(sandbox);
      sandbox.revokeTokens();
      assert.equal((await fetch(`${sandbox.url}/archivist/v2/assets`, { headers: { authorization: `Bearer ${revokedLater}` } })).status, 401);
      token = await dataTrailsToken(sandbox);
    });
  });

  describe('app registrations', () => {
    it('creates an application whose secret is shown once, and which can get tokens with its custom claims', async () => {
      const response = await createApplication({ display_name: 'TrafficLight101', custom_claims: { serial_number: 'TL1000000101' } });
      assert.equal(response.status, 200);
      const application = (await response.json()) as DataTrailsApplication;
      const uuid = application.client_id;
      assert.equal(application.identity, `applications/${uuid}`);
      assert.match(application.tenant_id, /^tenant\//);
      assert.match(application.credentials[0].secret, /^[0-9a-f]{64}$/);
      assert.match(application.credentials[0].valid_until, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

      const { status, body } = await getJson(`${sandbox.url}/archivist/iam/v1/${application.identity}`);
      assert.equal(status, 200);
      assert.equal((body as unknown as DataTrailsApplication).credentials[0].secret, '');

      const appToken = await dataTrailsToken(sandbox, uuid, application.credentials[0].secret);
      assert.equal(jwtClaims(appToken).serial_number, 'TL1000000101');
      assert.equal(sandbox.dataTrailsApplications.size, 1);
    });

    it('a new registration has no administrator rights (403) until it is granted them; deleting it ends them', async () => {
      const created = (await (await createApplication({ display_name: 'Operator' })).json()) as DataTrailsApplication;
      const appToken = await dataTrailsToken(sandbox, created.client_id, created.credentials[0].secret);
      const asApp = { authorization: `Bearer ${appToken}` };
      const denied = await fetch(applicationsUrl, { headers: asApp });
      assert.equal(denied.status, 403);
      const body = (await denied.json()) as { code: number; message: string };
      assert.equal(body.code, 7);
      assert.match(body.message, new RegExp(created.client_id));
      assert.equal(
        (await fetch(applicationsUrl, { method: 'POST', headers: { ...asApp, 'content-type': 'application/json' }, body: '{"display_name":"x"}' })).status,
        403,
      );
      assert.equal((await fetch(`${sandbox.url}/archivist/v2/assets`, { headers: asApp })).status, 200, 'assets need no administrator');

      sandbox.dataTrailsApplications.grantAdministrator(created.client_id);
      assert.ok(sandbox.dataTrailsApplications.isAdministrator(created.client_id));
      assert.equal((await fetch(applicationsUrl, { headers: asApp })).status, 200);
      sandbox.dataTrailsApplications.revokeAdministrator(created.client_id);
      assert.equal((await fetch(applicationsUrl, { headers: asApp })).status, 403);
      sandbox.dataTrailsApplications.grantAdministrator(created.client_id);
      assert.equal((await fetch(`${applicationsUrl}/${created.client_id}`, { method: 'DELETE', headers: auth() })).status, 200);
      assert.equal(sandbox.dataTrailsApplications.isAdministrator(created.client_id), false);
      assert.ok(sandbox.dataTrailsApplications.isAdministrator(sandbox.demo.dataTrails.clientId), 'the demo integration is an administrator');
    });

    it('checks display_name and custom claims (400)', async () => {
      for (const body of [
        {},
        { display_name: '' },
        { display_name: 'x', custom_claims: { jit_user: 'a' } },
        { display_name: 'x', custom_claims: { arc_owner: 'a' } },
        { display_name: 'x', custom_claims: { count: 3 } },
        [1, 2],
      ]) {
        const response = await createApplication(body);
        assert.equal(response.status, 400, JSON.stringify(body));
        assert.equal(((await response.json()) as { code: number }).code, 3);
      }
    });

    it('takes only the roles of v1Role (ROLE_UNSPECIFIED, OWNER), else 400', async () => {
      const owner = await createApplication({ display_name: 'Owner', roles: ['OWNER'] });
      assert.equal(owner.status, 200);
      assert.deepEqual(((await owner.json()) as DataTrailsApplication).roles, ['OWNER']);
      for (const roles of [['viewer'], ['owner'], 'OWNER', [1]]) {
        const refused = await createApplication({ display_name: 'x', roles });
        assert.equal(refused.status, 400, JSON.stringify(roles));
        assert.match(((await refused.json()) as { message: string }).message, /roles must be an array of ROLE_UNSPECIFIED or OWNER/);
      }
    });

    it('refuses PATCH with a mask (400): the spec does not say what it takes, so the sandbox does not guess', async () => {
      const created = (await (await createApplication({ display_name: 'Masked' })).json()) as DataTrailsApplication;
      const response = await fetch(`${sandbox.url}/archivist/iam/v1/${created.identity}?mask=display_name`, {
        method: 'PATCH',
        headers: { ...auth(), 'content-type': 'application/json' },
        body: JSON.stringify({ display_name: 'Changed?' }),
      });
      assert.equal(response.status, 400);
      assert.match(((await response.json()) as { message: string }).message, /does not imitate the mask parameter/);
      assert.equal(sandbox.dataTrailsApplications.get(created.client_id)!.display_name, 'Masked');
    });

    it('answers 402 when the quota is reached', async () => {
      sandbox.dataTrailsApplications.quota = 2;
      assert.equal((await createApplication({ display_name: 'one' })).status, 200);
      assert.equal((await createApplication({ display_name: 'two' })).status, 200);
      assert.equal((await createApplication({ display_name: 'three' })).status, 402);
    });

    it('pages the list: page_size, then only page_token; display_name filters', async () => {
      sandbox.dataTrailsApplications.addMany(5, 'Pump');
      sandbox.dataTrailsApplications.add({ display_name: 'Valve' });
      sandbox.dataTrailsApplications.add({ display_name: 'Valve' });

      const names: string[] = [];
      let query = '?page_size=3';
      let pages = 0;
      for (;;) {
        const { status, body } = await getJson(`${applicationsUrl}${query}`);
        assert.equal(status, 200);
        pages += 1;
        const page = body.applications as DataTrailsApplication[];
        assert.ok(page.every((application) => application.credentials[0].secret === ''));
        names.push(...page.map((application) => application.display_name));
        if (!body.next_page_token) break;
        query = `?page_token=${encodeURIComponent(body.next_page_token as string)}`;
      }
      assert.equal(pages, 3);
      assert.deepEqual(names, ['Pump 1', 'Pump 2', 'Pump 3', 'Pump 4', 'Pump 5', 'Valve', 'Valve']);

      const first = await getJson(`${applicationsUrl}?display_name=Valve&page_size=1`);
      assert.equal((first.body.applications as unknown[]).length, 1);
      const tokenParam = encodeURIComponent(first.body.next_page_token as string);
      const second = await getJson(`${applicationsUrl}?page_token=${tokenParam}`);
      assert.equal((second.body.applications as DataTrailsApplication[])[0].display_name, 'Valve');
      assert.equal(second.body.next_page_token, '', "the last page's token is an empty string, as the seed lists it");
      assert.equal((await getJson(`${applicationsUrl}?page_token=${tokenParam}&display_name=Valve`)).status, 400);
      assert.equal((await getJson(`${applicationsUrl}?page_token=not-a-token`)).status, 400);
      assert.equal((await getJson(`${applicationsUrl}?page_size=0`)).status, 400);
    });

    it('updates partially, regenerates the secret, deletes, and answers 404 when missing', async () => {
      const response = await createApplication({ display_name: 'Light', custom_claims: { a: '1', b: '2' } });
      const created = (await response.json()) as DataTrailsApplication;
      const url = `${sandbox.url}/archivist/iam/v1/${created.identity}`;
      const oldToken = await dataTrailsToken(sandbox, created.client_id, created.credentials[0].secret);

      const patched = await fetch(url, {
        method: 'PATCH',
        headers: { ...auth(), 'content-type': 'application/json' },
        body: JSON.stringify({ custom_claims: { b: '3' } }),
      });
      const updated = (await patched.json()) as DataTrailsApplication;
      assert.equal(updated.display_name, 'Light');
      assert.deepEqual(updated.custom_claims, { b: '3' });
      assert.equal(updated.credentials[0].secret, '');

      const regenerate = await fetch(`${url}:regenerate-secret`, { method: 'POST', headers: auth() });
      const regenerated = (await regenerate.json()) as DataTrailsApplication;
      const newSecret = regenerated.credentials[0].secret;
      assert.match(newSecret, /^[0-9a-f]{64}$/);
      assert.notEqual(newSecret, created.credentials[0].secret);
      assert.equal((await dataTrailsTokenRequest(sandbox, created.client_id, created.credentials[0].secret)).status, 401, 'old secret');
      assert.equal((await dataTrailsTokenRequest(sandbox, created.client_id, newSecret)).status, 200, 'new secret');
      const stillWorks = await fetch(`${sandbox.url}/archivist/v2/assets`, { headers: { authorization: `Bearer ${oldToken}` } });
      assert.equal(stillWorks.status, 200, 'a token issued before the rotation keeps working');

      assert.equal((await fetch(url, { method: 'DELETE', headers: auth() })).status, 200);
      assert.equal((await getJson(url)).status, 404);
      assert.equal((await fetch(url, { method: 'DELETE', headers: auth() })).status, 404);
      assert.equal((await fetch(`${url}:regenerate-secret`, { method: 'POST', headers: auth() })).status, 404);
      assert.equal((await fetch(applicationsUrl)).status, 401);
      assert.ok(sandbox.calls('dataTrails.applications') >= 8);
    });
  });
});
