import { ErrorCode, IiotAuthError } from '../../core/errors.js';
import { header, type HttpResponse } from '../../core/http/index.js';
import type { ApiRequest } from '../../core/platform-connection.js';
import { isIdText, isPlainSegment } from '../../core/url.js';
import { parseJson, serverMessage } from '../response.js';

/**
 * Agent Management calls made with a token (docs/protocols.md, Insights Hub agents): the data
 * source configuration with the agent's token, and the app-side calls
 * (create, boarding configuration and status, offboard, delete) with an app
 * token. Request builders and one response reader.
 */
const BASE = '/api/agentmanagement/v3/agents';
const DATA_TYPES = ['INT', 'LONG', 'DOUBLE', 'BOOLEAN', 'STRING', 'BIG_STRING', 'TIMESTAMP'];

export function agentPath(agentId: string, suffix = ''): string {
  // One plain path segment: "..", "%2e%2e" or "a/b" would move the call to another resource.
  if (!isIdText(agentId) || !isPlainSegment(agentId)) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `"${agentId.slice(0, 60)}" is not an agent id (letters, digits, ".", "_" and "-", not only dots): set msg.agentId to the id shown in Insights Hub`,
    );
  }
  return `${BASE}/${agentId}${suffix}`;
}

// Accept */*, as the official SDK sends it: a server that produces a JSON
// subtype could answer 406 to application/json; the answers are read as JSON anyway.
const json = { accept: '*/*' };
const jsonBody = { accept: '*/*', 'content-type': 'application/json' };
// If-Match carries the bare numeric eTag (`3`, not `"3"`), as the official SDK sends it: the documents say nothing, and the SDK is known to work.

export const requests = {
  getDataSourceConfig: (agentId: string): ApiRequest => ({ method: 'GET', url: agentPath(agentId, '/dataSourceConfiguration'), headers: json }),
  putDataSourceConfig: (agentId: string, eTag: string, config: unknown): ApiRequest => ({
    method: 'PUT',
    url: agentPath(agentId, '/dataSourceConfiguration'),
    headers: { ...jsonBody, 'if-match': eTag },
    body: jsonText(checkDataSourceConfig(config)),
  }),
  create: (body: unknown): ApiRequest => ({ method: 'POST', url: BASE, headers: jsonBody, body: JSON.stringify(checkCreate(body)) }),
  get: (agentId: string): ApiRequest => ({ method: 'GET', url: agentPath(agentId), headers: json }),
  delete: (agentId: string, eTag: string): ApiRequest => ({ method: 'DELETE', url: agentPath(agentId), headers: { ...json, 'if-match': eTag } }),
  boardingConfig: (agentId: string): ApiRequest => ({ method: 'GET', url: agentPath(agentId, '/boarding/configuration'), headers: json }),
  boardingStatus: (agentId: string): ApiRequest => ({ method: 'GET', url: agentPath(agentId, '/boarding/status'), headers: json }),
  // No body, yet Content-Type application/json, as the official SDK sends it (a server that declares JSON input may refuse a POST without it).
  offboard: (agentId: string): ApiRequest => ({ method: 'POST', url: agentPath(agentId, '/boarding/offboard'), headers: jsonBody }),
};

/** The JSON body of a 2xx answer; any other status is an error that says what to do. */
export function readAgentApiResponse(res: HttpResponse, what: string): Record<string, unknown> {
  const status = res.statusCode;
  if (status >= 200 && status < 300) {
    if (!res.body.toString('utf8').trim()) return {};
    const parsed = parseJson(res);
    if (!parsed)
      throw new IiotAuthError(ErrorCode.API_RESPONSE_INVALID, `${what}: the platform answered ${status} with a body that is not JSON`, { statusCode: status });
    return parsed.value && typeof parsed.value === 'object' && !Array.isArray(parsed.value)
      ? (parsed.value as Record<string, unknown>)
      : { value: parsed.value };
  }
  const reason = serverMessage(res);
  const detail = reason ? ` (${reason})` : '';
  switch (status) {
    case 401:
    case 403:
      return fail(
        ErrorCode.PERMISSION_DENIED,
        `${what}: the platform refused the token (${status})${detail}: the app needs the agent management roles (mdsp:core:am.admin), or the agent token is for another agent`,
        status,
      );
    case 404:
      return fail(ErrorCode.NOT_FOUND, `${what}: no such agent (404): check msg.agentId or the boarding configuration`, status);
    case 412:
      return fail(ErrorCode.PRECONDITION_FAILED, `${what}: it changed meanwhile (412, the eTag is stale): read it again and re-apply the change`, status);
    case 400:
      return fail(ErrorCode.INPUT_INVALID, `${what}: the platform refused the request (400)${detail}`, status);
    case 429:
      return fail(ErrorCode.RATE_LIMITED, `${what}: the platform asks to slow down (429): send the message again later`, status);
    default:
      return fail(
        status >= 500 ? ErrorCode.API_ERROR : ErrorCode.HTTP_FAILED,
        `${what}: the platform answered ${status}${detail}${status >= 500 ? ": a problem on the platform's side; try again later" : ''}`,
        status,
      );
  }
}

/** The numeric eTag of a resource, from its body or its ETag header; "0" when it has none yet. */
export function eTagOf(res: HttpResponse, body: Record<string, unknown>): string {
  const value = body.eTag ?? body.etag ?? header(res.headers, 'etag');
  return value === undefined || value === null || value === '' ? '0' : String(value).replace(/^W\//, '').replace(/"/g, '');
}

function checkDataSourceConfig(config: unknown): unknown {
  const bad = (what: string) =>
    new IiotAuthError(ErrorCode.INPUT_INVALID, `msg.payload ${what}: send {configurationId, dataSources:[{name, dataPoints:[{id, name, type, unit}]}]}`);
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw bad('is not a data source configuration object');
  const { configurationId, dataSources } = config as { configurationId?: unknown; dataSources?: unknown };
  if (typeof configurationId !== 'string' || !configurationId) throw bad('lacks "configurationId"');
  if (!Array.isArray(dataSources)) throw bad('lacks the "dataSources" array');
  dataSources.forEach((source: { name?: unknown; dataPoints?: unknown }, i) => {
    if (!source || typeof source.name !== 'string' || !source.name) throw bad(`has a data source without a name (dataSources[${i}])`);
    if (!Array.isArray(source.dataPoints)) throw bad(`has a data source without "dataPoints" (dataSources[${i}])`);
    source.dataPoints.forEach((point: { id?: unknown; name?: unknown; type?: unknown; unit?: unknown }, j: number) => {
      const where = `dataSources[${i}].dataPoints[${j}]`;
      if (!point || typeof point.id !== 'string' || typeof point.name !== 'string') throw bad(`has a data point without id or name (${where})`);
      if (typeof point.type !== 'string' || !DATA_TYPES.includes(point.type))
        throw bad(`has a data point whose type is not one of ${DATA_TYPES.join(', ')} (${where})`);
      if (typeof point.unit !== 'string') throw bad(`has a data point without a unit ("" for none) (${where})`);
    });
  });
  return config;
}

function checkCreate(body: unknown): unknown {
  const payload = (body ?? {}) as { name?: unknown; securityProfile?: unknown; entityId?: unknown };
  const shape = 'send {name, entityId, securityProfile?} to create an agent';
  if (typeof payload.name !== 'string' || !payload.name.trim()) {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, `msg.payload.name is missing: ${shape}`);
  }
  // The API model makes entityId required: the asset the agent belongs to.
  if (typeof payload.entityId !== 'string' || !payload.entityId.trim()) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `msg.payload.entityId is missing: it is the id of the asset the agent belongs to, as Asset Manager shows it; ${shape}`,
    );
  }
  const securityProfile = payload.securityProfile ?? 'SHARED_SECRET';
  if (securityProfile !== 'SHARED_SECRET' && securityProfile !== 'RSA_3072') {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.payload.securityProfile must be SHARED_SECRET or RSA_3072');
  }
  return { name: payload.name, securityProfile, entityId: payload.entityId };
}

function fail(code: ErrorCode, message: string, statusCode: number): never {
  throw new IiotAuthError(code, message, { statusCode });
}

/** msg.payload as JSON, or INPUT_INVALID when it cannot be (circular, a BigInt). */
function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    throw new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.payload cannot be sent as JSON (it refers to itself, or holds a BigInt): send plain data');
  }
}
