import { ErrorCode, IiotAuthError } from '../core/errors.js';
import type { HttpResponse } from '../core/http/index.js';
import type { ApiRequest } from '../core/platform-connection.js';
import { retryAfterMs } from '../core/http/index.js';
import { RATE_LIMIT_RESET } from './datatrails.js';
import { isJsonObject, oneLine, parseJson, serverMessage } from './response.js';

/**
 * DataTrails app registrations (docs/protocols.md, DataTrails, `{base}/archivist/iam/v1/applications`):
 * for each action a request builder, which checks its input before anything
 * is sent, and a response reader, which checks the answer and turns an error
 * status into an error that says what to do. No network here: the caller
 * sends the requests (with the token applied), so all of it is testable
 * without a server.
 */

export const APPLICATIONS_PATH = '/archivist/iam/v1/applications';
export const ACTIONS = ['list', 'create', 'get', 'update', 'delete', 'regenerate-secret'] as const;
export type ApplicationAction = (typeof ACTIONS)[number];
/** A full `list` reads at most this many pages: a server that never stops sending next_page_token cannot loop a flow forever. */
export const MAX_PAGES = 100;
export const RESERVED_CLAIM_PREFIXES = ['jit_', 'arc_'] as const;
/** The roles an app registration may have: `v1Role` in DataTrails' OpenAPI (appregistrationsv1.swagger.json). */
export const ROLES = ['ROLE_UNSPECIFIED', 'OWNER'] as const;
export type Role = (typeof ROLES)[number];

/** An app registration as DataTrails returns it; fields beyond `identity` are passed on as they come. */
export interface Application {
  identity: string;
  display_name?: string;
  client_id?: string;
  tenant_id?: string;
  credentials?: Array<{ secret?: string; valid_from?: string; valid_until?: string }>;
  custom_claims?: Record<string, string>;
  roles?: string[];
  [field: string]: unknown;
}

export interface NewApplication {
  display_name: string;
  custom_claims?: Record<string, string>;
  roles?: Role[];
}

export interface ApplicationChanges {
  display_name?: string;
  custom_claims?: Record<string, string>;
}

export interface ListQuery {
  pageSize?: number;
  /** '' or absent: the first page. */
  pageToken?: string;
  displayName?: string;
}

export interface ApplicationPage {
  applications: Application[];
  /** '' on the last page. */
  nextPageToken: string;
}

/** What a response reader needs to explain an error. */
export interface ResponseContext {
  action: ApplicationAction;
  /** The application's uuid, for the actions on one application. */
  uuid?: string;
  /** The config node's client id (not a secret): named in the advice for a 403. */
  clientId?: string;
}

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const IDENTITY = new RegExp(`^(?:applications/)?(${UUID})$`);
const JSON_HEADERS = { accept: 'application/json' };

// --- input -----------------------------------------------------------------

export function isAction(value: unknown): value is ApplicationAction {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

/** The action, or a clear error naming where it came from (`msg.action` or the node's setting). */
export function checkAction(value: unknown, source: string): ApplicationAction {
  if (isAction(value)) return value;
  throw new IiotAuthError(
    ErrorCode.INPUT_INVALID,
    `${source} ${value === undefined || value === '' ? 'is not set' : `"${preview(value)}" is not an action`}: set it to one of ${ACTIONS.join(', ')}`,
  );
}

/** The uuid of the application named by `applications/<uuid>` or a bare uuid. */
export function parseIdentity(value: unknown, field = 'msg.identity'): string {
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `${field} is not set: set it to the app registration's identity (applications/<uuid>) or its uuid; the output of list, create and get carries it`,
    );
  }
  const match = typeof value === 'string' ? IDENTITY.exec(value.trim()) : null;
  if (!match) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `${field} "${preview(value)}" does not name an app registration: expected applications/<uuid> or a bare uuid, e.g. applications/d1fb6c87-faa9-4d56-b2fd-a5b70a9af065`,
    );
  }
  return match[1];
}

export function identityOf(uuid: string): string {
  return `applications/${uuid}`;
}

/** Checks a create body before it is sent: display name required, claim values strings, no reserved claim names. */
export function checkNewApplication(payload: unknown): NewApplication {
  const body = bodyObject(payload, 'create', '{display_name, custom_claims, roles}');
  onlyFields(body, ['display_name', 'custom_claims', 'roles'], 'create');
  const out: NewApplication = { display_name: displayName(body.display_name, true) };
  const claims = customClaims(body.custom_claims);
  if (claims !== undefined) out.custom_claims = claims;
  if (body.roles !== undefined && body.roles !== null) out.roles = roles(body.roles);
  return out;
}

/** Checks an update body: a partial change of display_name and/or custom_claims. */
export function checkApplicationChanges(payload: unknown): ApplicationChanges {
  const body = bodyObject(payload, 'update', '{display_name, custom_claims} (either or both)');
  if (body.roles !== undefined) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      'msg.payload.roles cannot be changed by update: DataTrails updates only display_name and custom_claims; create a new app registration for other roles',
    );
  }
  onlyFields(body, ['display_name', 'custom_claims'], 'update');
  const out: ApplicationChanges = {};
  const name = displayName(body.display_name, false);
  if (name !== undefined) out.display_name = name;
  const claims = customClaims(body.custom_claims);
  if (claims !== undefined) out.custom_claims = claims;
  if (out.display_name === undefined && out.custom_claims === undefined) {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.payload has nothing to update: set display_name and/or custom_claims');
  }
  return out;
}

/** Reads msg.pageSize, msg.pageToken and msg.displayName. `single` is true when either paging property is set. */
export function checkListQuery(input: { pageSize?: unknown; pageToken?: unknown; displayName?: unknown }): { query: ListQuery; single: boolean } {
  const query: ListQuery = {};
  const { pageSize, pageToken, displayName: name } = input;
  if (pageSize !== undefined && pageSize !== null && pageSize !== '') {
    const size = typeof pageSize === 'string' && /^\s*\d+\s*$/.test(pageSize) ? Number(pageSize) : pageSize;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) {
      throw new IiotAuthError(
        ErrorCode.INPUT_INVALID,
        `msg.pageSize "${preview(pageSize)}" is not a page size: set a whole number from 1 up, or delete it to list everything`,
      );
    }
    query.pageSize = size;
  }
  if (pageToken !== undefined && pageToken !== null) {
    if (typeof pageToken !== 'string') {
      throw new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.pageToken must be a string: the msg.nextPageToken of the previous page, or "" for the first page');
    }
    query.pageToken = pageToken.trim();
  }
  if (name !== undefined && name !== null && name !== '') {
    if (typeof name !== 'string') throw new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.displayName must be a string: the display name to list');
    query.displayName = name;
  }
  return { query, single: query.pageSize !== undefined || query.pageToken !== undefined };
}

// --- requests --------------------------------------------------------------

/**
 * One page. A page token carries the first request's filter, and the API
 * refuses a filter sent again with it: later pages send only page_token (and
 * page_size).
 */
export function buildListRequest(query: ListQuery): ApiRequest {
  const params = new URLSearchParams();
  if (query.pageToken) params.set('page_token', query.pageToken);
  else if (query.displayName) params.set('display_name', query.displayName);
  if (query.pageSize !== undefined) params.set('page_size', String(query.pageSize));
  const search = params.toString();
  return { method: 'GET', url: `${APPLICATIONS_PATH}${search ? `?${search}` : ''}`, headers: { ...JSON_HEADERS } };
}

/** A POST: the HTTP layer never repeats it, so a 429 cannot create the application twice. */
export function buildCreateRequest(application: NewApplication): ApiRequest {
  return jsonRequest('POST', APPLICATIONS_PATH, application);
}

export function buildGetRequest(uuid: string): ApiRequest {
  return { method: 'GET', url: `${APPLICATIONS_PATH}/${uuid}`, headers: { ...JSON_HEADERS } };
}

export function buildUpdateRequest(uuid: string, changes: ApplicationChanges): ApiRequest {
  return jsonRequest('PATCH', `${APPLICATIONS_PATH}/${uuid}`, changes);
}

export function buildDeleteRequest(uuid: string): ApiRequest {
  return { method: 'DELETE', url: `${APPLICATIONS_PATH}/${uuid}`, headers: { ...JSON_HEADERS } };
}

/** A POST without a body, never repeated either: each one replaces the secret. */
export function buildRegenerateSecretRequest(uuid: string): ApiRequest {
  return { method: 'POST', url: `${APPLICATIONS_PATH}/${uuid}:regenerate-secret`, headers: { ...JSON_HEADERS } };
}

function jsonRequest(method: string, url: string, body: unknown): ApiRequest {
  return { method, url, headers: { ...JSON_HEADERS, 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

// --- responses -------------------------------------------------------------

/** The application of a create, get, update or regenerate-secret answer. */
export function readApplicationResponse(res: HttpResponse, ctx: ResponseContext): Application {
  if (!isSuccess(res)) throw applicationsError(res, ctx);
  return checkApplication(jsonBody(res, ctx), ctx, 'the answer');
}

export function readListResponse(res: HttpResponse, ctx: ResponseContext): ApplicationPage {
  if (!isSuccess(res)) throw applicationsError(res, ctx);
  const body = jsonBody(res, ctx);
  // An empty list may come without the field (proto3 JSON leaves empty fields out).
  const list = body.applications ?? [];
  if (!Array.isArray(list)) throw invalid(ctx, '"applications" is not an array');
  const applications = list.map((item, index) => checkApplication(item, ctx, `applications[${index}]`));
  const next = body.next_page_token ?? '';
  if (typeof next !== 'string') throw invalid(ctx, '"next_page_token" is not a string');
  return { applications, nextPageToken: next };
}

/** A delete answers 200 with an empty object: nothing to read but the status. */
export function readDeleteResponse(res: HttpResponse, ctx: ResponseContext): void {
  if (!isSuccess(res)) throw applicationsError(res, ctx);
}

/**
 * Every page of the list, following next_page_token, at most `maxPages` pages;
 * a token the server sent before also ends it (a server going round in circles).
 */
export async function listAllApplications(
  send: (req: ApiRequest) => Promise<HttpResponse>,
  options: { displayName?: string | undefined; clientId?: string | undefined; maxPages?: number } = {},
): Promise<Application[]> {
  const { displayName, maxPages = MAX_PAGES } = options;
  const ctx: ResponseContext = { action: 'list', ...(options.clientId ? { clientId: options.clientId } : {}) };
  const all: Application[] = [];
  const seen = new Set<string>();
  let pageToken = '';
  for (let page = 1; ; page++) {
    const query: ListQuery = pageToken ? { pageToken } : displayName ? { displayName } : {};
    const { applications, nextPageToken } = readListResponse(await send(buildListRequest(query)), ctx);
    all.push(...applications);
    if (!nextPageToken) return all;
    if (page >= maxPages || seen.has(nextPageToken)) {
      throw new IiotAuthError(
        ErrorCode.TOO_MANY_PAGES,
        `the list of app registrations did not end after ${page} pages (${all.length} applications): ` +
          `${seen.has(nextPageToken) ? 'DataTrails sent a page token it had sent before' : `the node reads at most ${maxPages} pages`}; ` +
          'read the list page by page with msg.pageSize and msg.pageToken, or narrow it with msg.displayName',
      );
    }
    seen.add(nextPageToken);
    pageToken = nextPageToken;
  }
}

/** The error for an answer that is not 2xx: what happened and what to do. */
export function applicationsError(res: HttpResponse, ctx: ResponseContext): IiotAuthError {
  const status = res.statusCode;
  const what = describeAction(ctx);
  const says = serverMessage(res);
  const detail = says ? ` (DataTrails says: ${says})` : '';
  const options = { statusCode: status };
  switch (status) {
    case 400:
      return new IiotAuthError(
        ErrorCode.INPUT_INVALID,
        `DataTrails refused ${what} as invalid (400)${detail}: correct msg.payload or the msg properties`,
        options,
      );
    case 401:
      return new IiotAuthError(
        ErrorCode.AUTH_REJECTED,
        `DataTrails did not accept the token of the config node for ${what} (401), even after fetching a new one: check the client id and secret of the DataTrails config node`,
        options,
      );
    case 402:
      return new IiotAuthError(
        ErrorCode.QUOTA_EXCEEDED,
        `the tenancy's quota of app registrations is reached (402)${detail}: delete app registrations that are no longer used, or raise the quota with your DataTrails subscription`,
        options,
      );
    case 403: {
      const issuer = `${safeOrigin(res.url) ?? 'https://app.datatrails.ai'}/appidpv1`;
      const subject = ctx.clientId ? `"${ctx.clientId}" (the config node's client id)` : "the config node's client id";
      return new IiotAuthError(
        ErrorCode.PERMISSION_DENIED,
        `the custom integration of the DataTrails config node lacks administrator rights, which ${what} needs (403): ` +
          `in DataTrails, Settings, add an administrator with subject ${subject} and issuer ${issuer} (or use the administrators endpoint of the Tenancies API), then send the message again`,
        options,
      );
    }
    case 404:
      return new IiotAuthError(
        ErrorCode.NOT_FOUND,
        ctx.uuid
          ? `app registration ${identityOf(ctx.uuid)} does not exist (404): it was deleted, or msg.identity is wrong; list the app registrations to find it`
          : `DataTrails answered 404 to ${what}: check that the config node's URL points at DataTrails`,
        options,
      );
    case 429: {
      const wait = retryAfterMs(res.headers, Date.now(), [RATE_LIMIT_RESET]);
      const waitText = wait !== undefined ? `wait ${Math.max(1, Math.ceil(wait / 1000))} s` : 'wait a while';
      const repeat =
        ctx.action === 'list' || ctx.action === 'get' || ctx.action === 'delete'
          ? 'the node already retried it as often as allowed'
          : ctx.action === 'update'
            ? 'the node does not repeat update by itself'
            : `the node does not repeat ${ctx.action} by itself, so that it never takes effect twice`;
      return new IiotAuthError(
        ErrorCode.RATE_LIMITED,
        `DataTrails' rate limit is reached (429) for ${what}; ${repeat}: ${waitText} and send the message again`,
        {
          ...options,
          ...(wait !== undefined ? { retryAfterMs: wait } : {}),
        },
      );
    }
    default:
      return new IiotAuthError(
        ErrorCode.API_ERROR,
        status >= 500
          ? `DataTrails failed on its side for ${what} (${status})${detail}: the platform has a problem; send the message again later`
          : `DataTrails refused ${what} (${status})${detail}`,
        options,
      );
  }
}

// --- helpers ---------------------------------------------------------------

function describeAction(ctx: ResponseContext): string {
  const target = ctx.uuid ? ` of ${identityOf(ctx.uuid)}` : '';
  switch (ctx.action) {
    case 'list':
      return 'the list of app registrations';
    case 'create':
      return 'the creation of an app registration';
    case 'regenerate-secret':
      return `the new secret${target}`;
    default:
      return `the ${ctx.action}${target}`;
  }
}

function isSuccess(res: HttpResponse): boolean {
  return res.statusCode >= 200 && res.statusCode < 300;
}

function jsonBody(res: HttpResponse, ctx: ResponseContext): Record<string, unknown> {
  const parsed = parseJson(res);
  if (!parsed) throw invalid(ctx, "the body is not JSON; check that the config node's URL points at DataTrails, not at a proxy or login page");
  if (!isJsonObject(parsed.value)) throw invalid(ctx, 'the body is not a JSON object');
  return parsed.value;
}

function checkApplication(value: unknown, ctx: ResponseContext, where: string): Application {
  if (!isJsonObject(value)) throw invalid(ctx, `${where} is not an object`);
  if (typeof value.identity !== 'string' || !value.identity.startsWith('applications/')) {
    throw invalid(ctx, `${where} has no "identity" of the form applications/<uuid>`);
  }
  return value as Application;
}

function invalid(ctx: ResponseContext, problem: string): IiotAuthError {
  return new IiotAuthError(ErrorCode.API_RESPONSE_INVALID, `DataTrails answered ${describeAction(ctx)} with something unexpected: ${problem}`);
}

function bodyObject(payload: unknown, action: string, shape: string): Record<string, unknown> {
  if (!isJsonObject(payload)) {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, `msg.payload must be an object ${shape} to ${action} an app registration`);
  }
  return payload;
}

function onlyFields(body: Record<string, unknown>, allowed: string[], action: string): void {
  const unknown = Object.keys(body).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `msg.payload has ${unknown.map((key) => `"${preview(key)}"`).join(', ')}, which ${action} does not take: use ${allowed.join(', ')}`,
    );
  }
}

function displayName(value: unknown, required: true): string;
function displayName(value: unknown, required: boolean): string | undefined;
function displayName(value: unknown, required: boolean): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value.trim() === '') {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      required
        ? 'msg.payload.display_name is required: the name the app registration (custom integration) shows in DataTrails'
        : 'msg.payload.display_name must be a non-empty string',
    );
  }
  return value;
}

/** DataTrails knows two roles (`v1Role`): anything else would be refused by the platform, so it is refused here first. */
function roles(value: unknown): Role[] {
  if (!Array.isArray(value)) {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, `msg.payload.roles must be an array of roles, e.g. ["OWNER"]; DataTrails knows ${ROLES.join(' and ')}`);
  }
  const unknown = value.filter((role) => !(ROLES as readonly unknown[]).includes(role));
  if (unknown.length > 0) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `msg.payload.roles has ${unknown.map((role) => `"${preview(role)}"`).join(', ')}, which DataTrails does not know: use ${ROLES.join(' or ')} (exactly so, in capitals), or leave roles out`,
    );
  }
  return [...(value as Role[])];
}

function customClaims(value: unknown): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.payload.custom_claims must be an object of strings, e.g. {"serial_number": "TL1000000101"}');
  }
  for (const [name, claim] of Object.entries(value)) {
    if (name.trim() === '') throw new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.payload.custom_claims has an empty claim name');
    const reserved = RESERVED_CLAIM_PREFIXES.find((prefix) => name.toLowerCase().startsWith(prefix));
    if (reserved) {
      throw new IiotAuthError(
        ErrorCode.INPUT_INVALID,
        `custom claim "${preview(name)}" is not allowed: DataTrails reserves names starting with ${RESERVED_CLAIM_PREFIXES.join(' or ')}; rename it`,
      );
    }
    if (typeof claim !== 'string') {
      throw new IiotAuthError(
        ErrorCode.INPUT_INVALID,
        `custom claim "${preview(name)}" must be a string, not ${claim === null ? 'null' : Array.isArray(claim) ? 'an array' : `a ${typeof claim}`}: write it in quotes, e.g. "true" or "42"`,
      );
    }
  }
  return { ...(value as Record<string, string>) };
}

function safeOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** A value as it may appear in a message: short, one line. */
function preview(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = `(a ${typeof value} that cannot be shown)`; // circular, or a BigInt
  }
  return oneLine(text, 60);
}
