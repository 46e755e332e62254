import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import helper from 'node-red-node-test-helper';
import { ErrorCode } from '../../src/core/errors.js';
import type { HttpResponse } from '../../src/core/http/index.js';
import type { ApiRequest } from '../../src/core/platform-connection.js';
import appRegistrationNode from '../../src/nodes/iiot-app-registration.js';
import dataTrailsNode from '../../src/nodes/iiot-datatrails.js';
import type { NodeMessage } from '../../src/nodes/node-red.js';
import * as apps from '../../src/platforms/datatrails-applications.js';
import type { DataTrailsApplication, Sandbox } from '../../src/sandbox/index.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { FlowHarness as H, uid, type FlowNode } from '../helpers/flow.js';
import { countOutcomes, outcomeOf, settled, type Outcome } from '../helpers/outcome.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The app registration node (DataTrails app registrations, docs/protocols.md, DataTrails):
 * its client functions without a network, then every action through the
 * node in a Node-RED runtime against the sandbox.
 */

const UUID = 'd1fb6c87-faa9-4d56-b2fd-a5b70a9af065';

function response(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return { statusCode, headers, body: Buffer.from(text), url: 'https://app.datatrails.ai/archivist/iam/v1/applications' };
}

describe('app registrations: client functions (no network)', () => {
  it('names an application by applications/<uuid> or a bare uuid, and refuses anything else', () => {
    assert.equal(apps.parseIdentity(`applications/${UUID}`), UUID);
    assert.equal(apps.parseIdentity(` ${UUID} `), UUID);
    assert.equal(apps.parseIdentity(UUID.toUpperCase()), UUID.toUpperCase());
    for (const bad of [`assets/${UUID}`, `applications/${UUID}/x`, `applications/${UUID}:regenerate-secret`, '../applications', 'applications/abc', 42, {}]) {
      assert.throws(() => apps.parseIdentity(bad), { code: ErrorCode.INPUT_INVALID, message: /applications\/<uuid> or a bare uuid/ });
    }
    for (const missing of [undefined, null, '', '  ']) {
      assert.throws(() => apps.parseIdentity(missing), { code: ErrorCode.INPUT_INVALID, message: /msg\.identity is not set/ });
    }
  });

  it('checks a create body: display name required, claim values strings, no jit_ or arc_ claim names, no unknown fields', () => {
    assert.deepEqual(apps.checkNewApplication({ display_name: 'TL', custom_claims: { serial: 'TL1' }, roles: ['OWNER'] }), {
      display_name: 'TL',
      custom_claims: { serial: 'TL1' },
      roles: ['OWNER'],
    });
    assert.deepEqual(apps.checkNewApplication({ display_name: 'TL', roles: ['ROLE_UNSPECIFIED'] }).roles, ['ROLE_UNSPECIFIED']);
    const refused: [unknown, RegExp][] = [
      [undefined, /msg\.payload must be an object/],
      ['TL', /msg\.payload must be an object/],
      [{}, /display_name is required/],
      [{ display_name: '  ' }, /display_name is required/],
      [{ display_name: 'TL', custom_claims: { light: true } }, /"light" must be a string, not a boolean/],
      [{ display_name: 'TL', custom_claims: { n: 42 } }, /"n" must be a string, not a number/],
      [{ display_name: 'TL', custom_claims: ['a'] }, /custom_claims must be an object/],
      [{ display_name: 'TL', custom_claims: { jit_x: 'a' } }, /"jit_x" is not allowed: DataTrails reserves names starting with jit_ or arc_/],
      [{ display_name: 'TL', custom_claims: { ARC_x: 'a' } }, /"ARC_x" is not allowed/],
      [{ display_name: 'TL', roles: 'OWNER' }, /roles must be an array of roles, e\.g\. \["OWNER"\]/],
      // v1Role in appregistrationsv1.swagger.json: ROLE_UNSPECIFIED or OWNER, nothing else, case included.
      [{ display_name: 'TL', roles: ['viewer'] }, /"viewer", which DataTrails does not know: use ROLE_UNSPECIFIED or OWNER/],
      [{ display_name: 'TL', roles: ['owner'] }, /"owner", which DataTrails does not know/],
      [{ display_name: 'TL', roles: ['OWNER', 7] }, /has "7", which DataTrails does not know/],
      [{ display_name: 'TL', displayName: 'x' }, /"displayName", which create does not take/],
    ];
    for (const [payload, message] of refused) {
      assert.throws(() => apps.checkNewApplication(payload), { code: ErrorCode.INPUT_INVALID, message }, JSON.stringify(payload));
    }
  });

  it('checks an update body: display_name and/or custom_claims, nothing else', () => {
    assert.deepEqual(apps.checkApplicationChanges({ display_name: 'New' }), { display_name: 'New' });
    assert.deepEqual(apps.checkApplicationChanges({ custom_claims: {} }), { custom_claims: {} });
    assert.throws(() => apps.checkApplicationChanges({}), { message: /nothing to update/ });
    assert.throws(() => apps.checkApplicationChanges({ roles: [] }), { message: /roles cannot be changed by update/ });
    assert.throws(() => apps.checkApplicationChanges({ identity: 'applications/x' }), { message: /"identity", which update does not take/ });
    assert.throws(() => apps.checkApplicationChanges({ display_name: '' }), { message: /display_name must be a non-empty string/ });
    assert.throws(() => apps.checkApplicationChanges({ custom_claims: { arc_y: 'v' } }), { message: /"arc_y" is not allowed/ });
  });

  it('reads the list properties: single page when msg.pageSize or msg.pageToken is set', () => {
    assert.deepEqual(apps.checkListQuery({}), { query: {}, single: false });
    assert.deepEqual(apps.checkListQuery({ displayName: 'A' }), { query: { displayName: 'A' }, single: false });
    assert.deepEqual(apps.checkListQuery({ pageSize: '10' }), { query: { pageSize: 10 }, single: true });
    assert.deepEqual(apps.checkListQuery({ pageToken: '' }), { query: { pageToken: '' }, single: true });
    for (const pageSize of [0, -1, 2.5, 'ten', {}]) {
      assert.throws(() => apps.checkListQuery({ pageSize }), { code: ErrorCode.INPUT_INVALID, message: /msg\.pageSize/ });
    }
    assert.throws(() => apps.checkListQuery({ pageToken: 5 }), { message: /msg\.pageToken must be a string/ });
    assert.throws(() => apps.checkListQuery({ displayName: 5 }), { message: /msg\.displayName must be a string/ });
  });

  it('builds the requests of docs/protocols.md, DataTrails', () => {
    assert.deepEqual(apps.buildListRequest({}), { method: 'GET', url: '/archivist/iam/v1/applications', headers: { accept: 'application/json' } });
    assert.equal(apps.buildListRequest({ displayName: 'a b', pageSize: 5 }).url, '/archivist/iam/v1/applications?display_name=a+b&page_size=5');
    // Later pages: only page_token (URL-encoded) and page_size; the token carries the filter.
    assert.equal(
      apps.buildListRequest({ pageToken: 'eyJ+/=', displayName: 'a', pageSize: 5 }).url,
      '/archivist/iam/v1/applications?page_token=eyJ%2B%2F%3D&page_size=5',
    );
    const create = apps.buildCreateRequest({ display_name: 'TL' });
    assert.equal(create.method, 'POST');
    assert.equal(create.headers!['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(String(create.body)), { display_name: 'TL' });
    assert.deepEqual(
      [
        apps.buildGetRequest(UUID),
        apps.buildUpdateRequest(UUID, { display_name: 'x' }),
        apps.buildDeleteRequest(UUID),
        apps.buildRegenerateSecretRequest(UUID),
      ].map((r) => `${r.method} ${r.url}`),
      [
        `GET /archivist/iam/v1/applications/${UUID}`,
        `PATCH /archivist/iam/v1/applications/${UUID}`,
        `DELETE /archivist/iam/v1/applications/${UUID}`,
        `POST /archivist/iam/v1/applications/${UUID}:regenerate-secret`,
      ],
    );
  });

  it('reads list pages, including an empty list without the field, and names what is wrong in a bad one', () => {
    const ctx = { action: 'list' as const };
    assert.deepEqual(apps.readListResponse(response(200, {}), ctx), { applications: [], nextPageToken: '' });
    const page = apps.readListResponse(response(200, { applications: [{ identity: `applications/${UUID}` }], next_page_token: 'abc' }), ctx);
    assert.equal(page.nextPageToken, 'abc');
    assert.equal(page.applications.length, 1);
    const bad: [HttpResponse, RegExp][] = [
      [response(200, '<html>login</html>'), /not JSON/],
      [response(200, []), /not a JSON object/],
      [response(200, { applications: {} }), /"applications" is not an array/],
      [response(200, { applications: [{ name: 'x' }] }), /applications\[0\] has no "identity"/],
      [response(200, { applications: [], next_page_token: 5 }), /"next_page_token" is not a string/],
    ];
    for (const [res, message] of bad) assert.throws(() => apps.readListResponse(res, ctx), { code: ErrorCode.API_RESPONSE_INVALID, message });
    assert.throws(() => apps.readApplicationResponse(response(200, { display_name: 'x' }), { action: 'create' }), { code: ErrorCode.API_RESPONSE_INVALID });
  });

  it('maps each error status to a code and a message that says what to do', () => {
    const grpc = (message: string) => ({ code: 3, message, details: [] });
    const cases: [HttpResponse, apps.ResponseContext, string, RegExp][] = [
      [response(400, grpc('display_name is required')), { action: 'create' }, 'INPUT_INVALID', /\(400\) \(DataTrails says: display_name is required\)/],
      [response(401, grpc('Unauthenticated')), { action: 'list' }, 'AUTH_REJECTED', /client id and secret of the DataTrails config node/],
      [response(402, grpc('quota')), { action: 'create' }, 'QUOTA_EXCEEDED', /quota of app registrations is reached \(402\).*delete app registrations/],
      [
        response(403, grpc('denied')),
        { action: 'list', clientId: 'cid-123' },
        'PERMISSION_DENIED',
        /lacks administrator rights.*\(403\).*subject "cid-123".*issuer https:\/\/app\.datatrails\.ai\/appidpv1/,
      ],
      [response(404, grpc('nf')), { action: 'get', uuid: UUID }, 'NOT_FOUND', new RegExp(`applications/${UUID} does not exist \\(404\\)`)],
      [response(429, '', { 'archivist-rate-limit-reset': '7' }), { action: 'create' }, 'RATE_LIMITED', /does not repeat create by itself.*wait 7 s/],
      [response(429, '', { 'retry-after': '3' }), { action: 'get', uuid: UUID }, 'RATE_LIMITED', /already retried.*wait 3 s/],
      [response(503, 'busy'), { action: 'delete', uuid: UUID }, 'API_ERROR', /failed on its side.*\(503\)/],
    ];
    for (const [res, ctx, code, message] of cases) {
      const err = apps.applicationsError(res, ctx);
      assert.equal(err.code, code, err.message);
      assert.match(err.message, message);
      assert.equal(err.statusCode, res.statusCode);
    }
    assert.equal(apps.applicationsError(response(429, '', { 'archivist-rate-limit-reset': '7' }), { action: 'create' }).retryAfterMs, 7000);
  });

  it('each error code of the node has a status text under 20 characters in both languages', () => {
    const codes = [
      'NOT_FOUND',
      'PERMISSION_DENIED',
      'QUOTA_EXCEEDED',
      'RATE_LIMITED',
      'API_ERROR',
      'API_RESPONSE_INVALID',
      'TOO_MANY_PAGES',
      'INPUT_INVALID',
      'AUTH_REJECTED',
    ];
    for (const code of codes) assert.ok(code in ErrorCode, code);
    for (const lang of ['en-US', 'de']) {
      const file = path.join(__dirname, '..', '..', '..', 'nodes', 'locales', lang, 'iiot-token.json');
      const status = (JSON.parse(fs.readFileSync(file, 'utf8')) as { common: { status: Record<string, string> } }).common.status;
      for (const code of codes) {
        assert.ok(typeof status[code] === 'string' && status[code].length > 0 && status[code].length < 20, `${lang} ${code}: ${status[code]}`);
      }
    }
  });

  it('a full list is bounded: at most 100 pages, and a page token seen before ends it', async () => {
    const urls: string[] = [];
    const endless = async (req: ApiRequest) => {
      urls.push(req.url);
      return response(200, { applications: [{ identity: `applications/${UUID}` }], next_page_token: `token-${urls.length}` });
    };
    await assert.rejects(apps.listAllApplications(endless, { displayName: 'Pump' }), {
      code: ErrorCode.TOO_MANY_PAGES,
      message: /after 100 pages \(100 applications\).*page by page/,
    });
    assert.equal(urls.length, 100);
    assert.equal(urls[0], '/archivist/iam/v1/applications?display_name=Pump');
    assert.equal(urls[1], '/archivist/iam/v1/applications?page_token=token-1', 'later pages send only the token');

    let calls = 0;
    const circular = async () => {
      calls += 1;
      return response(200, { applications: [], next_page_token: 'same' });
    };
    await assert.rejects(apps.listAllApplications(circular), { code: ErrorCode.TOO_MANY_PAGES, message: /sent a page token it had sent before/ });
    assert.equal(calls, 2);
  });
});

describe('app registration node (DataTrails) against the sandbox', function () {
  this.timeout(60_000);
  let sandbox: Sandbox;
  const modules = [dataTrailsNode, appRegistrationNode];

  const env = withSandboxAndRuntime();
  before(() => {
    sandbox = env.sandbox;
  });
  afterEach(() => {
    sandbox.dataTrailsApplications.clear();
    sandbox.dataTrailsApplications.quota = 20;
  });

  interface AppFlow {
    ids: { config: string; node: string; out: string; errors: string };
  }

  /** config → app registration node → collector; a Catch node → another collector. */
  async function load(node: Record<string, unknown> = {}, credentials?: Record<string, string>): Promise<AppFlow> {
    const ids = { config: uid('cfg'), node: uid('app'), out: uid('out'), errors: uid('err') };
    const nodes: FlowNode[] = [
      { id: ids.config, type: 'iiot-datatrails', url: sandbox.url },
      { id: ids.node, type: 'iiot-app-registration', platform: 'datatrails', dataTrails: ids.config, action: 'msg', ...node, wires: [[ids.out]] },
      { id: ids.out, type: 'helper' },
      { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
      { id: ids.errors, type: 'helper' },
    ];
    const creds = credentials ?? { clientId: sandbox.demo.dataTrails.clientId, clientSecret: sandbox.demo.dataTrails.clientSecret };
    await H.load(modules, nodes, { [ids.config]: creds });
    return { ids };
  }

  /** Sends one message and returns how it ended; fails unless it ended in exactly one output or one error. */
  async function run(f: AppFlow, msg: NodeMessage): Promise<{ msg?: NodeMessage; error?: Outcome['error'] }> {
    const outcome = await outcomeOf(f.ids, () => H.node(f.ids.node).receive(msg));
    return outcome.kind === 'output' ? { msg: outcome.msg } : { error: outcome.error };
  }

  async function ok(f: AppFlow, msg: NodeMessage): Promise<NodeMessage> {
    const outcome = await run(f, msg);
    assert.ok(outcome.msg, `expected an output, got ${outcome.error?.code}: ${outcome.error?.message}`);
    return outcome.msg;
  }

  async function fails(f: AppFlow, msg: NodeMessage, code: string): Promise<NonNullable<Outcome['error']>> {
    const outcome = await run(f, msg);
    assert.ok(outcome.error, `expected ${code}, got an output`);
    assert.equal(outcome.error.code, code, outcome.error.message);
    return outcome.error;
  }

  const store = () => sandbox.dataTrailsApplications;
  const secretOf = (application: unknown) => (application as DataTrailsApplication).credentials[0]!.secret;
  const lastStatus = (f: AppFlow) => H.statuses(f.ids.node).at(-1)!;

  /** Whether these client credentials get a token from the sandbox's DataTrails. */
  async function tokenStatus(clientId: string, clientSecret: string): Promise<number> {
    const res = await fetch(`${sandbox.url}/archivist/iam/v1/appidp/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  describe('actions', () => {
    it('create outputs the application with its secret, which works; msg.identity names it', async () => {
      const f = await load({ action: 'create' });
      const msg = await ok(f, { payload: { display_name: 'TrafficLight101', custom_claims: { serial_number: 'TL1000000101' }, roles: ['OWNER'] } });
      const application = msg.payload as DataTrailsApplication;
      assert.match(application.identity, /^applications\/[0-9a-f-]{36}$/);
      assert.equal(msg.identity, application.identity);
      assert.equal(application.display_name, 'TrafficLight101');
      assert.deepEqual(application.custom_claims, { serial_number: 'TL1000000101' });
      assert.deepEqual(application.roles, ['OWNER']);
      assert.match(secretOf(application), /^[0-9a-f]{64}$/);
      assert.equal(store().size, 1);
      assert.equal(await tokenStatus(application.client_id, secretOf(application)), 200, 'the output secret is the real one');
      const statuses = H.statuses(f.ids.node);
      assert.equal(statuses[0]!.fill, 'yellow', 'fetching the token first');
      assert.equal(lastStatus(f).fill, 'green');
      assert.match(String(lastStatus(f).text), /status\.authenticated$/, 'the shared status text (the test runtime shows keys)');
    });

    it('get reads one application by applications/<uuid> or a bare uuid, secret redacted', async () => {
      const created = store().add({ display_name: 'Pump 7', custom_claims: { site: 'north' } });
      const f = await load({ action: 'get' });
      for (const identity of [created.identity, created.client_id]) {
        const msg = await ok(f, { identity });
        const application = msg.payload as DataTrailsApplication;
        assert.equal(application.identity, created.identity);
        assert.equal(application.display_name, 'Pump 7');
        assert.equal(secretOf(application), '');
        assert.equal(msg.identity, created.identity);
      }
    });

    it('update changes display name and custom claims partially', async () => {
      const created = store().add({ display_name: 'Pump 7', custom_claims: { site: 'north' } });
      const f = await load({ action: 'update' });
      let msg = await ok(f, { identity: created.identity, payload: { display_name: 'Pump 8' } });
      assert.equal((msg.payload as DataTrailsApplication).display_name, 'Pump 8');
      assert.deepEqual((msg.payload as DataTrailsApplication).custom_claims, { site: 'north' }, 'claims untouched');
      msg = await ok(f, { identity: created.client_id, payload: { custom_claims: { site: 'south', line: '2' } } });
      assert.deepEqual(store().get(created.client_id)!.custom_claims, { site: 'south', line: '2' });
      assert.equal(store().get(created.client_id)!.display_name, 'Pump 8');
      assert.equal(secretOf(msg.payload), '');
    });

    it('delete outputs {identity, deleted: true}; deleting again is NOT_FOUND', async () => {
      const created = store().add({ display_name: 'Old' });
      const f = await load({ action: 'delete' });
      const msg = await ok(f, { identity: created.client_id });
      assert.deepEqual(msg.payload, { identity: created.identity, deleted: true });
      assert.equal(msg.identity, created.identity);
      assert.equal(store().size, 0);
      const error = await fails(f, { identity: created.identity }, 'NOT_FOUND');
      assert.match(error.message, new RegExp(`app registration ${created.identity} does not exist \\(404\\)`));
      assert.equal(lastStatus(f).fill, 'red');
    });

    it('regenerate-secret outputs a new secret that works, and the old one stops working', async () => {
      const created = store().add({ display_name: 'Rotating' });
      const f = await load({ action: 'regenerate-secret' });
      const msg = await ok(f, { identity: created.identity });
      const secret = secretOf(msg.payload);
      assert.match(secret, /^[0-9a-f]{64}$/);
      assert.notEqual(secret, secretOf(created));
      assert.equal(msg.identity, created.identity);
      assert.equal(await tokenStatus(created.client_id, secret), 200);
      assert.equal(await tokenStatus(created.client_id, secretOf(created)), 401);
    });

    it('takes the action from msg.action when set to msg, and refuses an unknown one before any request', async () => {
      const f = await load({ action: 'msg' });
      const created = (await ok(f, { action: 'create', payload: { display_name: 'Via msg' } })).payload as DataTrailsApplication;
      assert.equal(((await ok(f, { action: 'get', identity: created.identity })).payload as DataTrailsApplication).display_name, 'Via msg');
      assert.equal(((await ok(f, { action: 'list' })).payload as unknown[]).length, 1);
      sandbox.resetCalls();
      for (const action of [undefined, 'remove', 42]) {
        const error = await fails(f, { action, identity: created.identity }, 'INPUT_INVALID');
        assert.match(error.message, /msg\.action .*list, create, get, update, delete, regenerate-secret/);
      }
      assert.equal(sandbox.calls('dataTrails.applications'), 0);
    });

    it('a node with a fixed action ignores msg.action', async () => {
      store().add({ display_name: 'Keep me' });
      const f = await load({ action: 'list' });
      const msg = await ok(f, { action: 'delete' });
      assert.equal((msg.payload as unknown[]).length, 1);
      assert.equal(store().size, 1);
    });

    it('without a config node: CONFIG_MISSING, nothing sent', async () => {
      const f = await load({ action: 'list', dataTrails: '' });
      const error = await fails(f, {}, 'CONFIG_MISSING');
      assert.match(error.message, /no DataTrails config node is selected/);
      assert.equal(sandbox.calls('dataTrails.token'), 0);
    });
  });

  describe('list', () => {
    it('an empty tenancy lists []', async () => {
      const f = await load({ action: 'list' });
      assert.deepEqual((await ok(f, {})).payload, []);
    });

    it('follows next_page_token across several pages and outputs all applications, secrets redacted', async () => {
      const seeded = store().addMany(120, 'Sensor');
      const f = await load({ action: 'list' });
      const msg = await ok(f, {});
      const listed = msg.payload as DataTrailsApplication[];
      assert.deepEqual(
        listed.map((a) => a.identity),
        seeded.map((a) => a.identity),
      );
      assert.equal(sandbox.calls('dataTrails.applications'), 3, '50 + 50 + 20 (the sandbox pages by 50)');
      assert.ok(listed.every((a) => secretOf(a) === ''));
      assert.equal(msg.nextPageToken, undefined, 'no page token in full-list mode');
    });

    it('msg.displayName filters, over several pages, without repeating the filter with the page token', async () => {
      store().addMany(10, 'Other');
      store().addMany(70, 'Pump');
      for (let i = 0; i < 60; i++) store().add({ display_name: 'Pump' });
      store().addMany(5, 'Valve');
      const f = await load({ action: 'list' });
      const listed = (await ok(f, { displayName: 'Pump' })).payload as DataTrailsApplication[];
      assert.equal(listed.length, 60);
      assert.ok(listed.every((a) => a.display_name === 'Pump'));
      assert.equal(sandbox.calls('dataTrails.applications'), 2);
    });

    it('single-page mode: msg.pageSize and msg.pageToken read one page, msg.nextPageToken leads on, "" at the end', async () => {
      const seeded = store().addMany(25, 'Page');
      const f = await load({ action: 'list' });
      const seen: string[] = [];
      let msg: NodeMessage = { pageSize: 10 };
      const tokens: unknown[] = [];
      for (let page = 0; page < 5; page++) {
        msg = await ok(f, msg);
        seen.push(...(msg.payload as DataTrailsApplication[]).map((a) => a.identity));
        tokens.push(msg.nextPageToken);
        if (msg.nextPageToken === '') break;
        msg.pageToken = msg.nextPageToken;
      }
      assert.deepEqual(
        seen,
        seeded.map((a) => a.identity),
      );
      assert.equal(tokens.length, 3);
      assert.ok(typeof tokens[0] === 'string' && tokens[0] !== '');
      assert.equal(tokens[2], '');
      assert.equal(sandbox.calls('dataTrails.applications'), 3);

      // A page token alone (no page size) is single-page mode too: the server's page size.
      sandbox.resetCalls();
      const first = await ok(f, { pageToken: '' });
      assert.equal((first.payload as unknown[]).length, 25);
      assert.equal(first.nextPageToken, '');
      assert.equal(sandbox.calls('dataTrails.applications'), 1);
    });

    it('single-page mode with msg.displayName: the next page keeps the filter through the token', async () => {
      store().addMany(3, 'X');
      for (let i = 0; i < 5; i++) store().add({ display_name: 'Pump' });
      const f = await load({ action: 'list' });
      const first = await ok(f, { displayName: 'Pump', pageSize: 3 });
      assert.equal((first.payload as unknown[]).length, 3);
      const second = await ok(f, { ...first, pageToken: first.nextPageToken });
      assert.deepEqual(
        (second.payload as DataTrailsApplication[]).map((a) => a.display_name),
        ['Pump', 'Pump'],
      );
      assert.equal(second.nextPageToken, '');
    });

    it('a server that keeps sending the same page token ends in TOO_MANY_PAGES, not a loop', async () => {
      sandbox.fault('dataTrails.applications', {
        kind: 'status',
        status: 200,
        body: JSON.stringify({ applications: [], next_page_token: 'c2FtZQ==' }),
      });
      const f = await load({ action: 'list' });
      const error = await fails(f, {}, 'TOO_MANY_PAGES');
      assert.match(error.message, /msg\.pageSize and msg\.pageToken/);
      assert.equal(sandbox.calls('dataTrails.applications'), 2);
    });

    it('a list longer than 100 pages ends in TOO_MANY_PAGES after exactly 100 requests', async () => {
      store().addMany(100 * 50 + 1, 'Many');
      const f = await load({ action: 'list' });
      const error = await fails(f, {}, 'TOO_MANY_PAGES');
      assert.match(error.message, /after 100 pages \(5000 applications\): the node reads at most 100 pages/);
      assert.equal(sandbox.calls('dataTrails.applications'), 100);
      // The same list page by page is fine.
      const page = await ok(f, { pageSize: 1000 });
      assert.equal((page.payload as unknown[]).length, 1000);
    });
  });

  describe('validation before sending', () => {
    const cases: [string, NodeMessage, RegExp][] = [
      ['create without a payload', { action: 'create' }, /msg\.payload must be an object/],
      ['create without display_name', { action: 'create', payload: { custom_claims: { a: 'b' } } }, /display_name is required/],
      [
        'create with a non-string claim',
        { action: 'create', payload: { display_name: 'X', custom_claims: { has_light: true } } },
        /"has_light" must be a string/,
      ],
      ['create with a jit_ claim', { action: 'create', payload: { display_name: 'X', custom_claims: { jit_user: 'a' } } }, /"jit_user" is not allowed/],
      [
        'create with an arc_ claim',
        { action: 'create', payload: { display_name: 'X', custom_claims: { arc_display_name: 'a' } } },
        /"arc_display_name" is not allowed/,
      ],
      [
        'create with a role DataTrails does not know',
        { action: 'create', payload: { display_name: 'X', roles: ['viewer'] } },
        /"viewer", which DataTrails does not know: use ROLE_UNSPECIFIED or OWNER/,
      ],
      ['create with an unknown field', { action: 'create', payload: { display_name: 'X', secret: 'mine' } }, /"secret", which create does not take/],
      ['get without msg.identity', { action: 'get' }, /msg\.identity is not set/],
      ['get with an asset identity', { action: 'get', identity: `assets/${UUID}` }, /does not name an app registration/],
      ['delete with a path', { action: 'delete', identity: `applications/${UUID}/../x` }, /does not name an app registration/],
      ['regenerate-secret with a number', { action: 'regenerate-secret', identity: 42 }, /does not name an app registration/],
      ['update with nothing to change', { action: 'update', identity: UUID, payload: {} }, /nothing to update/],
      ['update of roles', { action: 'update', identity: UUID, payload: { roles: ['admin'] } }, /roles cannot be changed/],
      ['update with a reserved claim', { action: 'update', identity: UUID, payload: { custom_claims: { arc_x: '1' } } }, /"arc_x" is not allowed/],
      ['update without msg.identity', { action: 'update', payload: { display_name: 'X' } }, /msg\.identity is not set/],
      ['list with a bad page size', { action: 'list', pageSize: 0 }, /msg\.pageSize/],
    ];
    it('refuses each bad message with INPUT_INVALID and a clear message; the sandbox sees no request at all', async () => {
      const f = await load({ action: 'msg' });
      for (const [what, msg, message] of cases) {
        const error = await fails(f, msg, 'INPUT_INVALID');
        assert.match(error.message, message, what);
        assert.equal(lastStatus(f).fill, 'red');
      }
      assert.equal(sandbox.calls('dataTrails.applications'), 0, 'no API request');
      assert.equal(sandbox.calls('dataTrails.token'), 0, 'not even a token request');
      assert.equal(store().size, 0);
    });

    it('a 400 from DataTrails itself is INPUT_INVALID with what DataTrails said', async () => {
      sandbox.fault('dataTrails.applications', {
        kind: 'status',
        status: 400,
        body: JSON.stringify({ code: 3, message: 'display_name too long', details: [] }),
        times: 1,
      });
      const f = await load({ action: 'create' });
      const error = await fails(f, { payload: { display_name: 'X' } }, 'INPUT_INVALID');
      assert.match(error.message, /DataTrails refused the creation of an app registration as invalid \(400\) \(DataTrails says: display_name too long\)/);
    });
  });

  describe('error statuses', () => {
    it('401 from the API: a new token, one retry, then AUTH_REJECTED naming the config credentials', async () => {
      sandbox.fault('dataTrails.applications', { kind: 'status', status: 401 });
      const f = await load({ action: 'list' });
      const error = await fails(f, {}, 'AUTH_REJECTED');
      assert.match(error.message, /\(401\).*client id and secret of the DataTrails config node/);
      assert.equal(sandbox.calls('dataTrails.applications'), 2);
      assert.equal(sandbox.calls('dataTrails.token'), 2);
    });

    it('wrong config credentials: AUTH_REJECTED from the token endpoint, no API request', async () => {
      const wrong = 'wrong-dt-secret-for-app-registrations';
      const f = await load({ action: 'list' }, { clientId: sandbox.demo.dataTrails.clientId, clientSecret: wrong });
      const error = await fails(f, {}, 'AUTH_REJECTED');
      assert.match(error.message, /rejected the credentials \(401\)/);
      assert.equal(sandbox.calls('dataTrails.applications'), 0);
      assert.deepEqual(H.leaks([wrong]), []);
    });

    it('402: QUOTA_EXCEEDED says to delete app registrations; nothing is created', async () => {
      store().addMany(2);
      store().quota = 2;
      const f = await load({ action: 'create' });
      const error = await fails(f, { payload: { display_name: 'One too many' } }, 'QUOTA_EXCEEDED');
      assert.match(error.message, /quota of app registrations is reached \(402\).*delete app registrations that are no longer used/);
      assert.equal(store().size, 2);
    });

    it('403: PERMISSION_DENIED explains how to grant administrator rights, naming the client id and issuer', async () => {
      sandbox.fault('dataTrails.applications', { kind: 'status', status: 403, body: JSON.stringify({ code: 7, message: 'Permission denied', details: [] }) });
      const f = await load({ action: 'list' });
      const error = await fails(f, {}, 'PERMISSION_DENIED');
      assert.ok(error.message.includes(`subject "${sandbox.demo.dataTrails.clientId}"`), error.message);
      assert.ok(error.message.includes(`issuer ${sandbox.url}/appidpv1`), error.message);
      assert.match(error.message, /administrator rights/);
    });

    it('403 for real: a new app registration has no administrator rights until granted (the seed), then it may manage', async () => {
      const integration = store().add({ display_name: 'Line 4 integration' });
      const credentials = { clientId: integration.client_id, clientSecret: integration.credentials[0]!.secret };
      const f = await load({ action: 'list' }, credentials);
      const error = await fails(f, {}, 'PERMISSION_DENIED');
      assert.ok(error.message.includes(`subject "${integration.client_id}"`), error.message);
      assert.ok(error.message.includes(`issuer ${sandbox.url}/appidpv1`), error.message);
      assert.deepEqual(H.leaks([credentials.clientSecret]), []);
      store().grantAdministrator(integration.client_id);
      const listed = H.collect(f.ids.out, 1);
      H.node(f.ids.node).receive({});
      assert.ok(Array.isArray((await listed)[0]!.payload));
    });

    it('404 for get, update and regenerate-secret of an application that does not exist', async () => {
      const f = await load({ action: 'msg' });
      for (const [action, payload] of [['get'], ['update', { display_name: 'x' }], ['regenerate-secret']] as const) {
        const error = await fails(f, { action, identity: UUID, payload }, 'NOT_FOUND');
        assert.match(error.message, /does not exist \(404\): it was deleted, or msg\.identity is wrong/);
      }
    });

    it('5xx: API_ERROR; a malformed answer: API_RESPONSE_INVALID', async () => {
      const f = await load({ action: 'list' });
      sandbox.fault('dataTrails.applications', { kind: 'status', status: 500, times: 1 });
      assert.match((await fails(f, {}, 'API_ERROR')).message, /\(500\)/);
      sandbox.fault('dataTrails.applications', { kind: 'malformed', times: 1 });
      assert.match((await fails(f, {}, 'API_RESPONSE_INVALID')).message, /not JSON/);
    });
  });

  describe('429', () => {
    for (const header of ['archivist-rate-limit-reset', 'retry-after']) {
      it(`list, get and delete are retried after ${header}`, async () => {
        const created = store().add({ display_name: 'Limited' });
        const f = await load({ action: 'msg' });
        sandbox.fault('dataTrails.applications', { kind: 'status', status: 429, headers: { [header]: '0' }, times: 2 });
        assert.equal(((await ok(f, { action: 'list' })).payload as unknown[]).length, 1);
        assert.equal(sandbox.calls('dataTrails.applications'), 3);
        sandbox.resetCalls();
        sandbox.fault('dataTrails.applications', { kind: 'status', status: 429, headers: { [header]: '0' }, times: 1 });
        await ok(f, { action: 'get', identity: created.identity });
        assert.equal(sandbox.calls('dataTrails.applications'), 2);
        sandbox.resetCalls();
        sandbox.fault('dataTrails.applications', { kind: 'status', status: 429, headers: { [header]: '0' }, times: 1 });
        await ok(f, { action: 'delete', identity: created.identity });
        assert.equal(sandbox.calls('dataTrails.applications'), 2);
        assert.equal(store().size, 0);
      });

      it(`create, regenerate-secret and update are never repeated on a 429 (${header})`, async () => {
        const created = store().add({ display_name: 'Limited' });
        const f = await load({ action: 'msg' });
        sandbox.fault('dataTrails.applications', { kind: 'status', status: 429, headers: { [header]: '1' } });
        for (const msg of [
          { action: 'create', payload: { display_name: 'Twice?' } },
          { action: 'regenerate-secret', identity: created.identity },
          { action: 'update', identity: created.identity, payload: { display_name: 'Changed?' } },
        ]) {
          sandbox.resetCalls();
          const error = await fails(f, msg, 'RATE_LIMITED');
          assert.equal(sandbox.calls('dataTrails.applications'), 1, `${msg.action}: one request only`);
          assert.match(error.message, new RegExp(`does not repeat ${msg.action} by itself.*wait 1 s and send the message again`));
        }
        sandbox.clearFaults();
        assert.equal(store().size, 1, 'nothing created');
        assert.equal(store().get(created.client_id)!.display_name, 'Limited');
        assert.equal(await tokenStatus(created.client_id, secretOf(created)), 200, 'the secret was not regenerated');
      });
    }

    it("the sandbox's own 429 (rateLimited fault): list waits the Archivist-Rate-Limit-Reset seconds, then succeeds", async () => {
      store().add({ display_name: 'Limited' });
      const f = await load({ action: 'list' });
      await ok(f, {}); // the token is fetched: the wait measured below is the retry's alone
      sandbox.resetCalls();
      sandbox.fault('dataTrails.applications', { kind: 'rateLimited', resetSeconds: 1, times: 1 });
      const started = Date.now();
      assert.equal(((await ok(f, {})).payload as unknown[]).length, 1);
      assert.ok(Date.now() - started >= 950, `retried after ${Date.now() - started} ms, not after the 1 s the header asks`);
      assert.equal(sandbox.calls('dataTrails.applications'), 2);
    });

    it("the sandbox's own 429 asking longer than the node waits: RATE_LIMITED at once, naming the wait", async () => {
      const f = await load({ action: 'msg' });
      sandbox.fault('dataTrails.applications', { kind: 'rateLimited', resetSeconds: 60 });
      const listed = await fails(f, { action: 'list' }, 'RATE_LIMITED');
      assert.match(listed.message, /rate limit is reached \(429\).*wait 60 s and send the message again/);
      assert.equal(sandbox.calls('dataTrails.applications'), 1, 'not retried: 60 s is longer than the node waits');
      sandbox.resetCalls();
      const created = await fails(f, { action: 'create', payload: { display_name: 'Once' } }, 'RATE_LIMITED');
      assert.match(created.message, /does not repeat create by itself.*wait 60 s/);
      assert.equal(sandbox.calls('dataTrails.applications'), 1);
      assert.equal(store().size, 0);
    });

    it('a 429 that persists: three retries, then RATE_LIMITED', async () => {
      const f = await load({ action: 'list' });
      sandbox.fault('dataTrails.applications', { kind: 'status', status: 429, headers: { 'archivist-rate-limit-reset': '0' } });
      const error = await fails(f, {}, 'RATE_LIMITED');
      assert.match(error.message, /already retried/);
      assert.equal(sandbox.calls('dataTrails.applications'), 4);
    });
  });

  describe('secrets', () => {
    it('the secret appears in the outputs of create and regenerate-secret only: never in statuses, logs, errors or other outputs', async () => {
      const f = await load({ action: 'msg' });
      const created = await ok(f, { topic: 'create', action: 'create', payload: { display_name: 'Secretive', custom_claims: { k: 'v' } } });
      const identity = created.identity as string;
      const first = secretOf(created.payload);
      await ok(f, { topic: 'get', action: 'get', identity });
      await ok(f, { topic: 'list', action: 'list' });
      await ok(f, { topic: 'list-page', action: 'list', pageSize: 1 });
      await ok(f, { topic: 'update', action: 'update', identity, payload: { display_name: 'Still secretive' } });
      const regenerated = await ok(f, { topic: 'regenerate', action: 'regenerate-secret', identity });
      const second = secretOf(regenerated.payload);
      await fails(f, { topic: 'bad', action: 'create', payload: { display_name: 'X', custom_claims: { arc_x: '1' } } }, 'INPUT_INVALID');
      sandbox.fault('dataTrails.applications', { kind: 'status', status: 500, times: 1 });
      await fails(f, { topic: 'error', action: 'get', identity }, 'API_ERROR');
      await ok(f, { topic: 'delete', action: 'delete', identity });
      await fails(f, { topic: 'gone', action: 'get', identity }, 'NOT_FOUND');

      const secrets = [first, second];
      assert.equal(new Set(secrets).size, 2);
      // Every send of the app registration node: only the create and regenerate outputs hold a secret.
      const sends = (helper._NodePrototype.send as unknown as { getCalls(): Array<{ args: unknown[]; thisValue: { id?: string } }> })
        .getCalls()
        .filter((call) => call.thisValue.id === f.ids.node)
        .map((call) => call.args[0] as NodeMessage);
      assert.equal(sends.length, 7);
      for (const msg of sends) {
        const text = JSON.stringify(msg);
        const holds = secrets.filter((s) => text.includes(s));
        if (msg.topic === 'create') assert.deepEqual(holds, [first]);
        else if (msg.topic === 'regenerate') assert.deepEqual(holds, [second]);
        else assert.deepEqual(holds, [], `${String(msg.topic)} output holds a secret`);
      }
      // Everything else the runtime emitted (log, status, warn, error, the flow config) holds none.
      const elsewhere = H.emitted()
        .split('\n')
        .filter((line) => !sends.some((msg) => (msg.topic === 'create' || msg.topic === 'regenerate') && line.includes(String(msg._msgid))));
      for (const secret of [...secrets, sandbox.demo.dataTrails.clientSecret]) {
        assert.ok(!elsewhere.some((line) => line.includes(secret)), 'a secret outside the create and regenerate outputs');
      }
      for (const status of H.statuses(f.ids.node)) assert.ok(!secrets.some((s) => JSON.stringify(status).includes(s)));
      assert.deepEqual(H.leaks([sandbox.demo.dataTrails.clientSecret]), []);
    });
  });

  it('exactly one ending per message: 10 concurrent creates against a quota of 5', async () => {
    store().quota = 5;
    const f = await load({ action: 'create' });
    const { outputs: outs, errors } = await countOutcomes(f.ids, async () => {
      for (let i = 0; i < 10; i++) H.node(f.ids.node).receive({ payload: { display_name: `Concurrent ${i}` } });
    });
    assert.equal(outs.length, 5);
    assert.equal(errors.length, 5);
    assert.ok(errors.every((m) => (m.error as { code: string }).code === 'QUOTA_EXCEEDED'));
    assert.equal(sandbox.calls('dataTrails.token'), 1, 'one token for all');
    assert.equal(store().size, 5);
  });

  it('the example flow creates an application, reads it back, regenerates its secret and deletes it', async () => {
    const file = path.join(__dirname, '..', '..', '..', 'examples', 'DataTrails app registrations.json');
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(!/secret"\s*:\s*"[^"]/.test(text), 'the example carries no credentials');
    const flow = JSON.parse(text.split('http://127.0.0.1:1881').join(sandbox.url)) as FlowNode[];
    // Debug nodes become collectors; the injects are the real core node.
    const debugs = flow.filter((n) => n.type === 'debug').map((n) => n.id);
    for (const node of flow) if (node.type === 'debug') node.type = 'helper';
    const config = flow.find((n) => n.type === 'iiot-datatrails')!;
    const nodeRed = path.dirname(process.env.NODE_RED_PATH ? require.resolve(process.env.NODE_RED_PATH) : require.resolve('node-red'));
    const injectNode = require(require.resolve('@node-red/nodes/core/common/20-inject.js', { paths: [nodeRed] })) as unknown;
    const received = new Map<string, NodeMessage[]>(debugs.map((id) => [id, []]));
    const loaded = H.load([injectNode, ...modules], flow, {
      [config.id]: { clientId: sandbox.demo.dataTrails.clientId, clientSecret: sandbox.demo.dataTrails.clientSecret },
    });
    await loaded;
    for (const id of debugs) H.node(id).on('input', (m: NodeMessage) => received.get(id)!.push(m));
    const byName = (name: string) => received.get(flow.find((n) => n.name === name)!.id)!;
    await waitFor(() => byName('deleted').length > 0 || byName('error (msg.error)').length > 0, {
      timeoutMs: 15_000,
      what: 'the example to delete its application, or an error',
    });
    await settled(); // every node of the example has ended its messages: a late error would be in by now
    assert.deepEqual(byName('error (msg.error)'), []);
    const created = byName('created (holds the secret)')[0]!.payload as DataTrailsApplication;
    const read = byName('read back (secret is "")')[0]!.payload as DataTrailsApplication;
    const regenerated = byName('new secret')[0]!.payload as DataTrailsApplication;
    assert.equal(created.display_name, 'Example traffic light');
    assert.match(secretOf(created), /^[0-9a-f]{64}$/);
    assert.equal(read.identity, created.identity);
    assert.equal(secretOf(read), '');
    assert.equal(regenerated.identity, created.identity);
    assert.match(secretOf(regenerated), /^[0-9a-f]{64}$/);
    assert.notEqual(secretOf(regenerated), secretOf(created));
    assert.deepEqual(byName('deleted')[0]!.payload, { identity: created.identity, deleted: true });
    assert.ok(Array.isArray(byName('all app registrations')[0]!.payload));
    assert.equal(store().size, 0);
  });
});
