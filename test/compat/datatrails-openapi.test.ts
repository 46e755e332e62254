import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import appRegistrationNode from '../../src/nodes/iiot-app-registration.js';
import dataTrailsNode from '../../src/nodes/iiot-datatrails.js';
import requestNode from '../../src/nodes/iiot-request.js';
import type { NodeMessage } from '../../src/nodes/node-red.js';
import { withSandboxAndRuntime } from '../helpers/runtime.js';
import { FlowHarness as H, uid, type FlowNode, type NodeRedNode } from '../helpers/flow.js';
import { startRecorder, type RecordedRequest, type Recorder } from './recorder.js';

/**
 * DataTrails' own OpenAPI specifications (test/fixtures/datatrails-openapi,
 * datatrails/datatrails-openapi at f289aba, MPL-2.0) against what our client
 * sends and what our sandbox answers. A Node-RED runtime drives the app
 * registration node (every action) and the request node (the assets list)
 * through a recording proxy in front of the sandbox; every request and answer
 * it saw is then validated with the spec's own schemas: the query against the
 * operation's query parameters, the body against its body parameter, the
 * answer against the schema of its status.
 *
 * What this can catch: the spec has no `additionalProperties: false`, and its
 * only `required` for these calls is `display_name` of a create (checked
 * below, so this comment stays true). So it catches wrong types, enum values
 * (a role other than ROLE_UNSPECIFIED or OWNER) and formats (date-time), a
 * status the spec does not list and a query parameter it does not name (our
 * own strictness: the query schemas built here allow no other parameter); it
 * does NOT catch a missing field in an answer or an extra one we invent.
 * Routes are mapped to the spec's operations by hand (ROUTES): the spec's
 * `basePath` repeats the start of its paths, so basePath + path is not where
 * the API is; the paths are used alone.
 */

const FIXTURES = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'datatrails-openapi');
const COMMIT = 'f289aba54d2b179ae47057035c1053513b42aaca';

type SpecName = 'appregistrationsv1' | 'assetsv2';
/** The git blob ids of the files at COMMIT in datatrails/datatrails-openapi: the copies are unmodified. */
const BLOBS: Record<SpecName, string> = {
  appregistrationsv1: '54d41908348a19267071930bfdabf3bb4b727c54',
  assetsv2: '3c175d9f914e4a2ed4b17122fb2237b86bb9c2fd',
};

interface Parameter {
  name: string;
  in: 'query' | 'path' | 'body';
  required?: boolean;
  type?: string;
  format?: string;
  enum?: string[];
  schema?: Record<string, unknown>;
}
interface Operation {
  parameters?: Parameter[];
  responses: Record<string, { schema?: Record<string, unknown> }>;
}
interface Spec {
  basePath: string;
  paths: Record<string, Record<string, Operation>>;
  definitions: Record<string, Record<string, unknown>>;
}

const raw = (name: SpecName): Buffer => fs.readFileSync(path.join(FIXTURES, `${name}.swagger.json`));
const SPECS: Record<SpecName, Spec> = {
  appregistrationsv1: JSON.parse(raw('appregistrationsv1').toString('utf8')) as Spec,
  assetsv2: JSON.parse(raw('assetsv2').toString('utf8')) as Spec,
};

/**
 * An asset's attribute on the wire is a string, a dict of strings or a list of
 * such dicts: the spec's own example of v2AssetResponse has strings, and so
 * has the Python SDK. The spec's v2Attribute describes the protobuf message
 * behind it (`{str_val, dict_val, list_val}`), which the API never shows. The
 * one change made, in memory, to validate answers; the test "the one
 * adjustment" shows the spec's example failing without it.
 */
const WIRE_ATTRIBUTE = {
  anyOf: [
    { type: 'string' },
    { type: 'object', additionalProperties: { type: 'string' } },
    { type: 'array', items: { type: 'object', additionalProperties: { type: 'string' } } },
  ],
};
const ASSETS_WIRE = 'assetsv2-wire';

function newAjv(): Ajv {
  // strict: false for the spec's `example` keyword (Swagger 2.0, not JSON Schema) and its int64 strings.
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(SPECS.appregistrationsv1 as object, 'appregistrationsv1');
  ajv.addSchema(SPECS.assetsv2 as object, 'assetsv2');
  const wire = structuredClone(SPECS.assetsv2);
  wire.definitions.v2Attribute = WIRE_ATTRIBUTE;
  ajv.addSchema(wire as object, ASSETS_WIRE);
  return ajv;
}
const ajv = newAjv();

/** The schema id answers and bodies of a spec are validated against. */
const schemaId = (spec: SpecName): string => (spec === 'assetsv2' ? ASSETS_WIRE : spec);

/** A `$ref: '#/definitions/x'` or an inline schema of the spec, as a validator. */
function validatorFor(spec: SpecName, schema: Record<string, unknown>): ValidateFunction {
  const ref = schema.$ref;
  if (typeof ref === 'string') return ajv.getSchema(`${schemaId(spec)}${ref}`)!;
  return ajv.compile(JSON.parse(JSON.stringify(schema).replace(/"#\/definitions\//g, `"${schemaId(spec)}#/definitions/`)) as object);
}

/**
 * The query parameters of an operation as a JSON Schema of the parsed query:
 * each named parameter with its type, format and enum; `attributes[string]`
 * (a map) as `attributes[<key>]`; nothing else allowed (ours: the spec lists
 * every parameter, so an unknown one is a mistake of ours).
 */
function querySchema(operation: Operation): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const patternProperties: Record<string, unknown> = {};
  for (const p of operation.parameters ?? []) {
    if (p.in !== 'query') continue;
    const schema = { type: p.type, ...(p.format ? { format: p.format } : {}), ...(p.enum ? { enum: p.enum } : {}) };
    if (p.name.endsWith('[string]')) patternProperties[`^${p.name.slice(0, -'[string]'.length)}\\[[^\\]]+\\]$`] = schema;
    else properties[p.name] = schema;
  }
  return { type: 'object', properties, patternProperties, additionalProperties: false };
}

/** A query string as the server reads it: integers as numbers where the spec says integer; a repeated name as an array. */
function parseQuery(search: string, operation: Operation): Record<string, unknown> {
  const integers = new Set((operation.parameters ?? []).filter((p) => p.in === 'query' && p.type === 'integer').map((p) => p.name));
  const params = new URLSearchParams(search);
  const query: Record<string, unknown> = {};
  for (const name of new Set(params.keys())) {
    const values = params.getAll(name).map((v) => (integers.has(name) && /^-?\d+$/.test(v) ? Number(v) : v));
    query[name] = values.length === 1 ? values[0] : values;
  }
  return query;
}

/** The read-only properties of a definition: a PATCH body must not send them. */
function readOnlyFields(spec: SpecName, definition: string): string[] {
  const properties = (SPECS[spec].definitions[definition]!.properties ?? {}) as Record<string, { readOnly?: boolean }>;
  return Object.entries(properties)
    .filter(([, p]) => p.readOnly)
    .map(([name]) => name);
}

// --- the routes, mapped by hand ----------------------------------------------

interface Route {
  method: string;
  /** The spec's path, used without basePath. */
  specPath: string;
  spec: SpecName;
}

const ROUTES: Route[] = [
  { method: 'GET', specPath: '/archivist/iam/v1/applications', spec: 'appregistrationsv1' },
  { method: 'POST', specPath: '/archivist/iam/v1/applications', spec: 'appregistrationsv1' },
  { method: 'GET', specPath: '/archivist/iam/v1/applications/{uuid}', spec: 'appregistrationsv1' },
  { method: 'PATCH', specPath: '/archivist/iam/v1/applications/{uuid}', spec: 'appregistrationsv1' },
  { method: 'DELETE', specPath: '/archivist/iam/v1/applications/{uuid}', spec: 'appregistrationsv1' },
  { method: 'POST', specPath: '/archivist/iam/v1/applications/{uuid}:regenerate-secret', spec: 'appregistrationsv1' },
  { method: 'GET', specPath: '/archivist/v2/assets', spec: 'assetsv2' },
  { method: 'POST', specPath: '/archivist/v2/assets', spec: 'assetsv2' },
];
/** In no OpenAPI file: the official Python SDK (archivist/appidp.py) is the source. */
const TOKEN_PATH = '/archivist/iam/v1/appidp/token';

function pathPattern(specPath: string): RegExp {
  const parts = specPath.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('([^/:]+)')}$`);
}

function routeOf(method: string, pathname: string): Route | undefined {
  return ROUTES.find((r) => r.method === method && pathPattern(r.specPath).test(pathname));
}

/** Every problem the spec finds with one recorded exchange (empty: it conforms). */
function problemsOf(exchange: RecordedRequest): string[] {
  const url = new URL(exchange.path, 'http://recorder.invalid');
  const what = `${exchange.method} ${url.pathname}${url.search}`;
  const route = routeOf(exchange.method, url.pathname);
  if (!route) return [`${what}: no route of the spec is mapped to it`];
  const operation = SPECS[route.spec].paths[route.specPath]![route.method.toLowerCase()]!;
  const problems: string[] = [];
  const check = (validate: ValidateFunction, data: unknown, part: string): void => {
    if (!validate(data)) problems.push(`${what}: ${part}: ${ajv.errorsText(validate.errors, { dataVar: part })}`);
  };

  check(ajv.compile(querySchema(operation)), parseQuery(url.search, operation), 'query');

  const bodyParameter = operation.parameters?.find((p) => p.in === 'body');
  if (bodyParameter) {
    let body: unknown;
    try {
      body = JSON.parse(exchange.body);
    } catch {
      return [...problems, `${what}: the body is not JSON`];
    }
    check(validatorFor(route.spec, bodyParameter.schema!), body, 'body');
    // A PATCH body is a whole v1Application in the spec, but only its writable fields make sense to send.
    const ref = String(bodyParameter.schema!.$ref ?? '');
    if (route.method === 'PATCH' && ref) {
      const sent = readOnlyFields(route.spec, ref.split('/').pop()!).filter((name) => name in (body as object));
      if (sent.length > 0) problems.push(`${what}: body: sends read-only ${sent.join(', ')}`);
    }
  } else if (exchange.body !== '') {
    problems.push(`${what}: sends a body, which the operation does not take`);
  }

  const response = exchange.response;
  if (!response) return [...problems, `${what}: no answer was recorded`];
  const declared = operation.responses[String(response.status)];
  if (!declared) return [...problems, `${what}: answered ${response.status}, which the spec does not list`];
  if (declared.schema) check(validatorFor(route.spec, declared.schema), JSON.parse(response.body), `answer ${response.status}`);
  return problems;
}

/** The token request as the SDK sends it (archivist/appidp.py: form data, these three fields). */
function tokenProblems(exchange: RecordedRequest): string[] {
  const problems: string[] = [];
  if (!/^application\/x-www-form-urlencoded/.test(exchange.headers['content-type'] ?? '')) problems.push('token request: not form-encoded');
  const form = new URLSearchParams(exchange.body);
  const fields = [...form.keys()].sort();
  if (fields.join() !== 'client_id,client_secret,grant_type') problems.push(`token request: fields ${fields.join(', ')}`);
  if (form.get('grant_type') !== 'client_credentials') problems.push('token request: grant_type is not client_credentials');
  return problems;
}

describe("DataTrails: our client and our sandbox against DataTrails' OpenAPI specification", function () {
  this.timeout(60_000);

  describe('the specification files', () => {
    it(`are the unmodified files of datatrails/datatrails-openapi at ${COMMIT.slice(0, 7)} (git blob ids)`, () => {
      for (const name of Object.keys(BLOBS) as SpecName[]) {
        const content = raw(name);
        const blob = createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
        assert.equal(blob, BLOBS[name], name);
      }
      assert.match(fs.readFileSync(path.join(FIXTURES, 'LICENSE'), 'utf8'), /^Mozilla Public License Version 2\.0/);
    });

    it("say what they can catch: no additionalProperties: false, and `required` only for a create's display_name (and an event's body)", () => {
      const required: string[] = [];
      let closed = 0;
      const walk = (node: unknown, where: string): void => {
        if (Array.isArray(node)) {
          for (const [i, item] of node.entries()) walk(item, `${where}[${i}]`);
          return;
        }
        if (typeof node !== 'object' || node === null) return;
        for (const [key, value] of Object.entries(node)) {
          if (key === 'required' && Array.isArray(value)) required.push(`${where}: ${value.join(', ')}`);
          if (key === 'additionalProperties' && value === false) closed += 1;
          walk(value, `${where}.${key}`);
        }
      };
      for (const name of Object.keys(SPECS) as SpecName[]) walk(SPECS[name].definitions, name);
      assert.equal(closed, 0);
      assert.deepEqual(required, ['appregistrationsv1.v1CreateAppRegistrationRequest: display_name', 'assetsv2.EventsCreateBody: behaviour, operation']);
    });

    it('have a basePath that repeats the start of every path: a validator must use the paths alone', () => {
      for (const spec of Object.values(SPECS)) {
        for (const specPath of Object.keys(spec.paths)) assert.ok(specPath.startsWith(spec.basePath), specPath);
      }
      assert.equal(`${SPECS.appregistrationsv1.basePath}/archivist/iam/v1/applications`, '/archivist/iam/v1/applications/archivist/iam/v1/applications');
    });

    it("the one adjustment: asset attributes are strings on the wire, as the spec's own example shows and its v2Attribute does not", () => {
      const example = SPECS.assetsv2.definitions.v2AssetResponse!.example;
      const asSpecified = ajv.getSchema('assetsv2#/definitions/v2AssetResponse')!;
      assert.equal(asSpecified(example), false, 'the spec refuses its own example');
      assert.match(ajv.errorsText(asSpecified.errors), /attributes\/colour must be object/);
      assert.equal(ajv.getSchema(`${ASSETS_WIRE}#/definitions/v2AssetResponse`)!(example), true);
      const wire = structuredClone(SPECS.assetsv2);
      wire.definitions.v2Attribute = SPECS.assetsv2.definitions.v2Attribute!;
      assert.deepEqual(wire, SPECS.assetsv2, 'v2Attribute is the only difference');
    });

    it('can fail: a role, a type, a date, a page size and a parameter the spec does not know are each caught', () => {
      const exchange = (method: string, url: string, body: unknown, answer: unknown, status = 200): RecordedRequest => ({
        method,
        path: url,
        headers: {},
        body: body === undefined ? '' : JSON.stringify(body),
        response: { status, headers: {}, body: JSON.stringify(answer) },
      });
      const application = {
        identity: 'applications/ffaa0f30-a503-4de7-b085-d857ed34a7cd',
        display_name: 'test',
        credentials: [{ secret: '', valid_from: '2021-09-17T16:54:08Z', valid_until: '2022-09-17T16:54:08Z' }],
        roles: ['OWNER'],
      };
      const apps = '/archivist/iam/v1/applications';
      assert.deepEqual(problemsOf(exchange('POST', apps, { display_name: 'x', roles: ['OWNER'] }, application)), [], 'a valid exchange passes');
      const cases: [RecordedRequest, RegExp][] = [
        [exchange('POST', apps, { display_name: 'x', roles: ['viewer'] }, application), /body\/roles\/0 must be equal to one of the allowed values/],
        [exchange('POST', apps, { display_name: 42 }, application), /body\/display_name must be string/],
        [exchange('POST', apps, { custom_claims: { a: 'b' } }, application), /body must have required property 'display_name'/],
        [exchange('POST', apps, { display_name: 'x', custom_claims: { n: 1 } }, application), /body\/custom_claims\/n must be string/],
        [
          exchange('GET', `${apps}/${application.identity.slice(13)}`, undefined, { ...application, roles: ['admin'] }),
          /answer 200\/roles\/0 must be equal to one of the allowed values/,
        ],
        [
          exchange('GET', apps, undefined, { applications: [{ ...application, credentials: [{ valid_from: 'yesterday' }] }] }),
          /answer 200\/applications\/0\/credentials\/0\/valid_from must match format "date-time"/,
        ],
        [exchange('GET', `${apps}?page_size=ten`, undefined, { applications: [] }), /query\/page_size must be integer/],
        [exchange('GET', `${apps}?pageSize=10`, undefined, { applications: [] }), /query must NOT have additional properties/],
        [exchange('GET', apps, undefined, { applications: [] }, 201), /answered 201, which the spec does not list/],
        [exchange('GET', '/archivist/v2/assets?order_by=NEWEST', undefined, { assets: [] }), /query\/order_by must be equal to one of the allowed values/],
        [exchange('GET', '/archivist/v2/assets', undefined, { assets: [{ public: 'no' }] }), /answer 200\/assets\/0\/public must be boolean/],
        [
          exchange('PATCH', `${apps}/${application.identity.slice(13)}`, { identity: application.identity, display_name: 'x' }, application),
          /sends read-only identity/,
        ],
        [exchange('POST', `${apps}/${application.identity.slice(13)}:regenerate`, undefined, application), /no route of the spec/],
      ];
      for (const [recorded, message] of cases) {
        assert.match(problemsOf(recorded).join('\n'), message, `${recorded.method} ${recorded.path} ${recorded.body}`);
      }
    });
  });

  describe('through a Node-RED runtime, every exchange recorded and validated', () => {
    const env = withSandboxAndRuntime();
    let recorder: Recorder;
    beforeEach(async () => {
      recorder = await startRecorder(env.sandbox.url);
    });
    afterEach(async () => {
      env.sandbox.dataTrailsApplications.clear();
      env.sandbox.dataTrailsApplications.quota = 20;
      await recorder.stop();
    });

    /** config (pointing at the recorder) → app registration node and request node → one collector; Catch → another. */
    async function load(): Promise<{ apps: string; request: string; out: string; errors: string }> {
      const ids = { config: uid('cfg'), apps: uid('app'), request: uid('req'), out: uid('out'), errors: uid('err') };
      const nodes: FlowNode[] = [
        { id: ids.config, type: 'iiot-datatrails', url: recorder.url },
        { id: ids.apps, type: 'iiot-app-registration', platform: 'datatrails', dataTrails: ids.config, action: 'msg', wires: [[ids.out]] },
        { id: ids.request, type: 'iiot-request', platform: 'datatrails', dataTrails: ids.config, method: 'USE', url: '', ret: 'obj', wires: [[ids.out]] },
        { id: ids.out, type: 'helper' },
        { id: uid('catch'), type: 'catch', scope: null, uncaught: false, wires: [[ids.errors]] },
        { id: ids.errors, type: 'helper' },
      ];
      const { clientId, clientSecret } = env.sandbox.demo.dataTrails;
      await H.load([dataTrailsNode, appRegistrationNode, requestNode], nodes, { [ids.config]: { clientId, clientSecret } });
      return ids;
    }

    /** Sends one message and returns its output; an error fails the test with its message. */
    async function send(ids: { out: string; errors: string }, node: string, msg: NodeMessage): Promise<NodeMessage> {
      return sendExpecting(ids, node, msg, 'output') as Promise<NodeMessage>;
    }

    /** Sends one message that must end in an error; returns its code. */
    async function fails(ids: { out: string; errors: string }, node: string, msg: NodeMessage): Promise<string> {
      return sendExpecting(ids, node, msg, 'error') as Promise<string>;
    }

    async function sendExpecting(
      ids: { out: string; errors: string },
      node: string,
      msg: NodeMessage,
      expect: 'output' | 'error',
    ): Promise<NodeMessage | string> {
      const out = H.node<NodeRedNode>(ids.out);
      const errors = H.node<NodeRedNode>(ids.errors);
      let onOut!: (m: NodeMessage) => void;
      let onError!: (m: NodeMessage) => void;
      const ended = new Promise<NodeMessage | string>((resolve, reject) => {
        onOut = (m) => (expect === 'output' ? resolve(m) : reject(new Error(`${JSON.stringify(msg)} gave an output, not an error`)));
        onError = (m) =>
          expect === 'error' ? resolve((m.error as { code: string }).code) : reject(new Error(`${JSON.stringify(msg)} ended in ${JSON.stringify(m.error)}`));
      });
      out.on('input', onOut);
      errors.on('input', onError);
      try {
        H.node<NodeRedNode>(node).receive(msg);
        return await ended;
      } finally {
        out.removeListener('input', onOut);
        errors.removeListener('input', onError);
      }
    }

    function assertConforms(exchanges: RecordedRequest[]): void {
      const problems = exchanges.flatMap((exchange) =>
        new URL(exchange.path, 'http://x').pathname === TOKEN_PATH ? tokenProblems(exchange) : problemsOf(exchange),
      );
      assert.deepEqual(problems, []);
    }

    it('app registrations: every request the client builds and every answer the sandbox gives, for all six actions', async () => {
      const ids = await load();
      // More than one default page (50), so that a full list follows next_page_token.
      env.sandbox.dataTrailsApplications.addMany(55, 'Filler');
      env.sandbox.dataTrailsApplications.quota = 58;
      const created = await send(ids, ids.apps, {
        action: 'create',
        payload: { display_name: 'TrafficLight101', custom_claims: { serial_number: 'TL1000000101', has_cyclist_light: 'true' }, roles: ['OWNER'] },
      });
      const identity = created.identity as string;
      await send(ids, ids.apps, { action: 'create', payload: { display_name: 'Plain', roles: ['ROLE_UNSPECIFIED'] } });
      await send(ids, ids.apps, { action: 'create', payload: { display_name: 'Bare' } });
      assert.equal(((await send(ids, ids.apps, { action: 'list' })).payload as unknown[]).length, 58);
      assert.equal(((await send(ids, ids.apps, { action: 'list', displayName: 'TrafficLight101' })).payload as unknown[]).length, 1);
      const first = await send(ids, ids.apps, { action: 'list', pageSize: 2, displayName: 'Filler 1' });
      assert.equal(first.nextPageToken, '', 'one application has that name');
      const page = await send(ids, ids.apps, { action: 'list', pageSize: 20 });
      await send(ids, ids.apps, { action: 'list', pageSize: 20, pageToken: page.nextPageToken as string });
      await send(ids, ids.apps, { action: 'get', identity });
      await send(ids, ids.apps, { action: 'update', identity, payload: { display_name: 'TrafficLight102' } });
      await send(ids, ids.apps, { action: 'update', identity, payload: { custom_claims: { serial_number: 'TL1000000102' } } });
      await send(ids, ids.apps, { action: 'regenerate-secret', identity });
      await send(ids, ids.apps, { action: 'delete', identity });
      // Statuses the spec lists without a schema: 404 and 402.
      assert.equal(await fails(ids, ids.apps, { action: 'get', identity }), 'NOT_FOUND');
      await send(ids, ids.apps, { action: 'create', payload: { display_name: 'The last one' } });
      assert.equal(await fails(ids, ids.apps, { action: 'create', payload: { display_name: 'One too many' } }), 'QUOTA_EXCEEDED');

      const exchanges = recorder.requests;
      const seen = new Set(exchanges.map((e) => routeOf(e.method, new URL(e.path, 'http://x').pathname)).filter((r) => r?.spec === 'appregistrationsv1'));
      assert.equal(seen.size, 6, 'every app registrations operation was exercised');
      assert.ok(
        exchanges.some((e) => e.path.includes('page_token=')),
        'a later page was read',
      );
      assert.ok(
        exchanges.some((e) => e.method === 'GET' && e.path.includes('display_name=')),
        'a filter was sent',
      );
      assert.ok(
        exchanges.some((e) => new URL(e.path, 'http://x').pathname === TOKEN_PATH),
        'the token request was recorded too',
      );
      assertConforms(exchanges);
    });

    it('the assets list: every answer the sandbox gives, filtered and paged, conforms; and x-total-count is there', async () => {
      const ids = await load();
      for (const [name, type, extra] of [
        ['Pump 1', 'Pump', { public: true }],
        ['Pump 2', 'Pump', { proof_mechanism: 'MERKLE_LOG' }],
        ['Valve 1', 'Valve', {}],
      ] as const) {
        const asset = await send(ids, ids.request, {
          method: 'POST',
          url: '/archivist/v2/assets',
          payload: { behaviours: ['RecordEvidence'], attributes: { arc_display_name: name, arc_display_type: type }, ...extra },
        });
        assert.equal(asset.statusCode, 200);
      }
      const list = (url: string) => send(ids, ids.request, { method: 'GET', url });
      const pumps = await list('/archivist/v2/assets?attributes[arc_display_type]=Pump&page_size=1');
      assert.equal((pumps.payload as { assets: unknown[] }).assets.length, 1);
      assert.equal((pumps.headers as Record<string, string>)['x-total-count'], '2');
      const token = (pumps.payload as { next_page_token: string }).next_page_token;
      await list(`/archivist/v2/assets?page_token=${encodeURIComponent(token)}`);
      await list('/archivist/v2/assets?order_by=DEFAULT&tracked=TRACKED&confirmation_status=PENDING&proof_mechanism=MERKLE_LOG&privacy=RESTRICTED');
      await list('/archivist/v2/assets');

      const lists = recorder.requests.filter((e) => e.method === 'GET');
      assert.equal(lists.length, 4);
      for (const e of lists) assert.match(e.response!.headers['x-total-count'] ?? '', /^\d+$/, `${e.path}: x-total-count is always present for 200 (the spec)`);
      assertConforms(recorder.requests);
    });
  });
});
