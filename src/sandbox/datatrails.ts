// DataTrails (docs/protocols.md, DataTrails): the client-credentials token
// endpoint, assets and their events, and the app registrations API.
// As the seed (datatrails-app-registrations.txt) says, a new app registration
// has no administrator rights; the app registrations API needs them (403
// otherwise). Administrators are subject (client id) + issuer
// (`{url}/appidpv1`); the demo integration is one, and tests grant more with
// `sandbox.dataTrailsApplications.grantAdministrator(clientId)` (the seed's
// Settings screen or Tenancies API). Assets and events take any valid token
// (the sandbox has no access policies). The last page of a list has
// `next_page_token: ""`, the seed listing it as a string.

import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { TokenIssuer } from './token-issuer.js';
import { checkApplicationFields, DataTrailsApplications, type ApplicationFields } from './datatrails-applications.js';
import { bearerToken, isoSeconds, isPlainObject, jsonObjectBody, jsonReply, mediaType } from './http-kit.js';
import type { Handler, Platform, Reply, SandboxContext, SandboxRequest } from './http-kit.js';

const TENANT_ID = 'tenant/6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
/** The chain id the sandbox's assets carry unless their creation names one (an arbitrary number, as a string). */
const CHAIN_ID = '827586838445807967';
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;

// The token endpoint's error bodies are not documented (clients must branch on
// the status); OAuth-style bodies are a plausible guess.
const oauthError = (status: number, error: string, description: string): Reply => jsonReply(status, { error, error_description: description });

// The API is served through grpc-gateway (hence `:regenerate-secret`), whose
// error body is {code (gRPC code), message, details}.
const GRPC_CODES: Record<number, number> = { 400: 3, 401: 16, 402: 8, 403: 7, 404: 5, 429: 8 };
const apiError = (status: number, message: string): Reply => jsonReply(status, { code: GRPC_CODES[status] ?? 2, message, details: [] });

export interface DataTrailsPlatform extends Platform {
  applications: DataTrailsApplications;
}

interface Asset {
  identity: string;
  [field: string]: unknown;
}

export async function createDataTrails(context: SandboxContext): Promise<DataTrailsPlatform> {
  const issuer = await TokenIssuer.create(`${context.url}/appidpv1`);
  const demo = context.demo.dataTrails;
  const applications = new DataTrailsApplications(TENANT_ID, issuer.issuer);
  applications.grantAdministrator(demo.clientId);
  const assets = new Map<string, Asset>();
  const eventsByAsset = new Map<string, Record<string, unknown>[]>();

  async function issueToken(request: SandboxRequest): Promise<Reply> {
    if (mediaType(request) !== 'application/x-www-form-urlencoded') {
      return oauthError(400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
    }
    const form = new URLSearchParams(request.body.toString('utf8'));
    if (form.get('grant_type') !== 'client_credentials') {
      return oauthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials');
    }
    const clientId = form.get('client_id');
    const clientSecret = form.get('client_secret');
    if (!clientId || !clientSecret) return oauthError(400, 'invalid_request', 'client_id and client_secret are required');

    let customClaims: Record<string, string> = {};
    if (clientId !== demo.clientId || clientSecret !== demo.clientSecret) {
      const application = applications.authenticate(clientId, clientSecret);
      if (!application) return oauthError(401, 'invalid_client', 'Client authentication failed');
      customClaims = application.custom_claims; // in the token, so that access policies can match them
    }
    const lifetime = context.lifetimes.dataTrailsToken;
    const issued = await issuer.issue({ ...customClaims, sub: clientId, aud: `${context.url}/archivist`, tenant_id: TENANT_ID }, lifetime);
    return jsonReply(200, { access_token: issued.token, token_type: 'Bearer', expires_in: lifetime });
  }

  /** Wraps an API handler: a valid bearer token, else 401. */
  function withToken(handler: (request: SandboxRequest, claims: JWTPayload, params: string[]) => Reply): Handler {
    return async (request, params) => {
      const token = bearerToken(request);
      const claims = token === undefined ? undefined : await issuer.verify(token);
      return claims ? handler(request, claims, params) : apiError(401, 'Unauthenticated: missing, expired or revoked token');
    };
  }

  // --- assets and events ---------------------------------------------------

  // Filters as assetsv2.swagger.json lists them; the count of all matches in x-total-count (see assetFilters).
  const listAssets = withToken(pagedList('assets', isAssetFilter, (filters) => selectAssets([...assets.values()], filters), { totalCount: true }));

  const createAsset = withToken((request) => {
    const body = jsonObjectBody(request);
    if (!body || !isPlainObject(body.attributes)) return apiError(400, 'attributes must be an object');
    const uuid = randomUUID();
    const proofMechanism = body.proof_mechanism ?? 'SIMPLE_HASH';
    if (typeof proofMechanism !== 'string' || !PROOF_MECHANISMS.includes(proofMechanism)) {
      return apiError(400, `proof_mechanism must be one of ${PROOF_MECHANISMS.join(', ')}`);
    }
    if (body.public !== undefined && typeof body.public !== 'boolean') return apiError(400, 'public must be a boolean');
    if (body.chain_id !== undefined && typeof body.chain_id !== 'string') return apiError(400, 'chain_id must be a string');
    // The fields of v2AssetResponse (assetsv2.swagger.json), no others.
    const asset: Asset = {
      identity: `assets/${uuid}`,
      behaviours: Array.isArray(body.behaviours) ? body.behaviours : ['RecordEvidence'],
      attributes: body.attributes,
      confirmation_status: 'PENDING',
      tracked: 'TRACKED',
      owner: '',
      at_time: isoSeconds(new Date()),
      proof_mechanism: proofMechanism,
      chain_id: typeof body.chain_id === 'string' && body.chain_id !== '' ? body.chain_id : CHAIN_ID,
      public: body.public === true,
      tenant_identity: TENANT_ID,
    };
    assets.set(uuid, asset);
    eventsByAsset.set(uuid, []);
    return jsonReply(200, asset);
  });

  const getAsset = withToken((_request, _claims, [uuid]) => {
    const asset = assets.get(uuid);
    return asset ? jsonReply(200, asset) : apiError(404, `asset not found: assets/${uuid}`);
  });

  const listEvents = withToken(
    pagedList(
      'events',
      () => false,
      (_filters, [uuid]) => eventsByAsset.get(uuid) ?? apiError(404, `asset not found: assets/${uuid}`),
    ),
  );

  const createEvent = withToken((request, claims, [uuid]) => {
    const events = eventsByAsset.get(uuid);
    if (!events) return apiError(404, `asset not found: assets/${uuid}`);
    const body = jsonObjectBody(request);
    if (!body || typeof body.operation !== 'string' || typeof body.behaviour !== 'string') {
      return apiError(400, 'operation and behaviour are required');
    }
    const now = isoSeconds(new Date());
    const event = {
      identity: `assets/${uuid}/events/${randomUUID()}`,
      asset_identity: `assets/${uuid}`,
      operation: body.operation,
      behaviour: body.behaviour,
      event_attributes: isPlainObject(body.event_attributes) ? body.event_attributes : {},
      asset_attributes: isPlainObject(body.asset_attributes) ? body.asset_attributes : {},
      timestamp_declared: now,
      timestamp_accepted: now,
      timestamp_committed: now,
      confirmation_status: 'PENDING',
      principal_accepted: { issuer: claims.iss, subject: claims.sub },
      tenant_identity: TENANT_ID,
    };
    events.push(event);
    return jsonReply(200, event);
  });

  // --- app registrations ---------------------------------------------------

  // display_name filters by exact match.
  const listApplications = withAdministrator(
    pagedList(
      'applications',
      (name) => name === 'display_name',
      ({ display_name }) => applications.list().filter((application) => display_name === undefined || application.display_name === display_name),
    ),
  );

  const createApplication = withAdministrator((request) => {
    const fields = checkApplicationFields(jsonObjectBody(request), false);
    if (typeof fields === 'string') return apiError(400, fields);
    if (applications.size >= applications.quota) {
      return apiError(402, `The quota of ${applications.quota} app registrations has been reached`);
    }
    return jsonReply(200, applications.add(fields as ApplicationFields));
  });

  const getApplication = withAdministrator((_request, _claims, [uuid]) => {
    const application = applications.get(uuid);
    return application ? jsonReply(200, application) : applicationNotFound(uuid);
  });

  const updateApplication = withAdministrator((request, _claims, [uuid]) => {
    // The OpenAPI lists a `mask` query parameter without saying what it takes; the
    // official SDK never sends it. Refused rather than ignored, so that nothing a
    // flow asks for is silently dropped (docs/protocols.md, DataTrails).
    if (request.query.has('mask')) {
      return apiError(400, 'the sandbox does not imitate the mask parameter: send only the fields to change (display_name, custom_claims)');
    }
    const fields = checkApplicationFields(jsonObjectBody(request), true);
    if (typeof fields === 'string') return apiError(400, fields);
    const application = applications.update(uuid, fields);
    return application ? jsonReply(200, application) : applicationNotFound(uuid);
  });

  const deleteApplication = withAdministrator((_request, _claims, [uuid]) => (applications.delete(uuid) ? jsonReply(200, {}) : applicationNotFound(uuid)));

  const regenerateSecret = withAdministrator((_request, _claims, [uuid]) => {
    const application = applications.regenerateSecret(uuid);
    return application ? jsonReply(200, application) : applicationNotFound(uuid);
  });

  const applicationNotFound = (uuid: string): Reply => apiError(404, `application not found: applications/${uuid}`);

  /** Wraps an app registrations handler: a valid token of an administrator, else 401 or 403. */
  function withAdministrator(handler: (request: SandboxRequest, claims: JWTPayload, params: string[]) => Reply): Handler {
    return withToken((request, claims, params) =>
      applications.isAdministrator(String(claims.sub), String(claims.iss))
        ? handler(request, claims, params)
        : apiError(403, `Permission denied: ${String(claims.sub)} is not an administrator of this tenancy`),
    );
  }

  return {
    name: 'datatrails',
    applications,
    routes: [
      { endpoint: 'dataTrails.token', path: /^\/archivist\/iam\/v1\/appidp\/token$/, methods: { POST: issueToken } },
      { endpoint: 'dataTrails.assets', path: /^\/archivist\/v2\/assets$/, methods: { GET: listAssets, POST: createAsset } },
      { endpoint: 'dataTrails.assets', path: /^\/archivist\/v2\/assets\/([^/]+)$/, methods: { GET: getAsset } },
      {
        endpoint: 'dataTrails.assets',
        path: /^\/archivist\/v2\/assets\/([^/]+)\/events$/,
        methods: { GET: listEvents, POST: createEvent },
      },
      {
        endpoint: 'dataTrails.applications',
        path: /^\/archivist\/iam\/v1\/applications$/,
        methods: { GET: listApplications, POST: createApplication },
      },
      {
        endpoint: 'dataTrails.applications',
        path: /^\/archivist\/iam\/v1\/applications\/([^/:]+)$/,
        methods: { GET: getApplication, PATCH: updateApplication, DELETE: deleteApplication },
      },
      {
        endpoint: 'dataTrails.applications',
        path: /^\/archivist\/iam\/v1\/applications\/([^/:]+):regenerate-secret$/,
        methods: { POST: regenerateSecret },
      },
    ],
    authenticates: async (request) => {
      const token = bearerToken(request);
      return token !== undefined && (await issuer.verify(token)) !== undefined;
    },
    revoke: () => issuer.rotate(),
    settle: () => issuer.settle(),
  };
}

// --- the assets list's filters (assetsv2.swagger.json, GET /archivist/v2/assets) ---

const PROOF_MECHANISMS = ['PROOF_MECHANISM_UNSPECIFIED', 'RESERVED1', 'SIMPLE_HASH', 'MERKLE_LOG'];
/** The enum parameters of the list, with the value that means "any". */
const ASSET_ENUM_FILTERS: Record<string, { values: string[]; any: string[] }> = {
  tracked: { values: ['TRACKED_STATUS_UNSPECIFIED', 'TRACKED', 'NOT_TRACKED', 'ANY'], any: ['TRACKED_STATUS_UNSPECIFIED', 'ANY'] },
  confirmation_status: {
    values: ['CONFIRMATION_STATUS_UNSPECIFIED', 'PENDING', 'CONFIRMED', 'FAILED', 'STORED', 'COMMITTED', 'UNEQUIVOCAL'],
    any: ['CONFIRMATION_STATUS_UNSPECIFIED'],
  },
  proof_mechanism: { values: PROOF_MECHANISMS, any: ['PROOF_MECHANISM_UNSPECIFIED'] },
  privacy: { values: ['PRIVACY_UNSPECIFIED', 'RESTRICTED', 'PUBLIC'], any: ['PRIVACY_UNSPECIFIED'] },
};
/** `attributes[key]=value` as the OpenAPI writes it, `attributes.key=value` as the Python SDK sends it (dictmerge.py `_dotdict`). */
const ATTRIBUTE_FILTER = /^attributes(?:\[([^\]]+)\]|\.(.+))$/;

function isAssetFilter(name: string): boolean {
  return name === 'order_by' || name === 'chain_id' || name in ASSET_ENUM_FILTERS || ATTRIBUTE_FILTER.test(name);
}

/**
 * The assets that match every filter (exact, string values), or a 400: an
 * unknown enum value, or an `order_by` other than DEFAULT (the spec names the
 * SIMPLEHASH orders without saying what they sort by, so the sandbox refuses
 * them rather than pretend).
 */
function selectAssets(all: Asset[], filters: Record<string, string>): Asset[] | Reply {
  const orderBy = filters.order_by;
  if (orderBy !== undefined && orderBy !== 'DEFAULT') {
    return ['SIMPLEHASHV1', 'SIMPLEHASHV2'].includes(orderBy)
      ? apiError(400, `the sandbox does not imitate order_by=${orderBy}: leave order_by out or send DEFAULT (oldest first)`)
      : apiError(400, 'order_by must be one of DEFAULT, SIMPLEHASHV1, SIMPLEHASHV2');
  }
  const tests: Array<(asset: Asset) => boolean> = [];
  for (const [name, value] of Object.entries(filters)) {
    const enumFilter = ASSET_ENUM_FILTERS[name];
    if (enumFilter) {
      if (!enumFilter.values.includes(value)) return apiError(400, `${name} must be one of ${enumFilter.values.join(', ')}`);
      if (enumFilter.any.includes(value)) continue;
      tests.push(name === 'privacy' ? (asset) => asset.public === (value === 'PUBLIC') : (asset) => asset[name] === value);
    } else if (name === 'chain_id') {
      tests.push((asset) => asset.chain_id === value);
    } else {
      const match = ATTRIBUTE_FILTER.exec(name);
      if (match) {
        const key = match[1] ?? match[2];
        tests.push((asset) => isPlainObject(asset.attributes) && asset.attributes[key] === value);
      }
    }
  }
  return all.filter((asset) => tests.every((test) => test(asset)));
}

interface PageRequest {
  /** The filters of the first request, e.g. {display_name}. */
  filters: Record<string, string>;
  pageSize: number;
  skip: number;
  originalRequest: Record<string, unknown>;
}

/**
 * Reads paging parameters as the real API does. The page token is opaque to
 * clients; like the real one it is base64 JSON `{"orig_req":{…},"skip":N}` and
 * carries the first request's filters, so later pages send only `page_token`
 * (and optionally `page_size`); sending a filter again is a 400.
 * Returns the request, or the message of a 400.
 */
function readPageRequest(query: URLSearchParams, isFilter: (name: string) => boolean): PageRequest | string {
  const pageToken = query.get('page_token') || undefined;
  let originalRequest: Record<string, unknown> = {};
  let skip = 0;
  const sent = [...new Set(query.keys())].filter(isFilter);
  if (pageToken !== undefined) {
    if (sent.length > 0) return `with page_token, send only page_size, not ${sent.join(', ')}`;
    const decoded = decodePageToken(pageToken);
    if (!decoded) return 'invalid page_token';
    ({ originalRequest, skip } = decoded);
  } else {
    for (const name of sent) originalRequest[name] = query.get(name);
  }
  let pageSize = DEFAULT_PAGE_SIZE;
  const requestedSize = query.get('page_size') ?? originalRequest.page_size;
  if (requestedSize !== undefined && requestedSize !== null) {
    pageSize = Number(requestedSize);
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      return `page_size must be an integer from 1 to ${MAX_PAGE_SIZE}`;
    }
    if (pageToken === undefined) originalRequest.page_size = pageSize;
  }
  const filters: Record<string, string> = {};
  for (const [name, value] of Object.entries(originalRequest)) {
    if (isFilter(name) && typeof value === 'string') filters[name] = value;
  }
  return { filters, pageSize, skip, originalRequest };
}

/**
 * One page of `items`; the last page's `next_page_token` is "". With
 * `totalCount`, the `x-total-count` header counts every match: the assets
 * list's 200 carries it always (assetsv2.swagger.json, its 206's description).
 */
function pageReply(listName: string, items: unknown[], page: PageRequest, totalCount: boolean): Reply {
  const body: Record<string, unknown> = { [listName]: items.slice(page.skip, page.skip + page.pageSize) };
  const next = page.skip + page.pageSize;
  body.next_page_token = next < items.length ? Buffer.from(JSON.stringify({ orig_req: page.originalRequest, skip: next })).toString('base64') : '';
  return jsonReply(200, body, totalCount ? { 'x-total-count': String(items.length) } : undefined);
}

/** A list handler: reads the paging parameters, then pages what `select` returns for the filters. */
function pagedList(
  listName: string,
  isFilter: (name: string) => boolean,
  select: (filters: Record<string, string>, params: string[]) => unknown[] | Reply,
  options: { totalCount?: boolean } = {},
): (request: SandboxRequest, claims: JWTPayload, params: string[]) => Reply {
  return (request, _claims, params) => {
    const page = readPageRequest(request.query, isFilter);
    if (typeof page === 'string') return apiError(400, page);
    const items = select(page.filters, params);
    return Array.isArray(items) ? pageReply(listName, items, page, options.totalCount === true) : items;
  };
}

function decodePageToken(token: string): { originalRequest: Record<string, unknown>; skip: number } | undefined {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
    if (!isPlainObject(decoded) || !isPlainObject(decoded.orig_req)) return undefined;
    const skip = decoded.skip;
    if (typeof skip !== 'number' || !Number.isInteger(skip) || skip < 0) return undefined;
    return { originalRequest: decoded.orig_req, skip };
  } catch {
    return undefined;
  }
}
