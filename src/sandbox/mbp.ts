// MBP (docs/protocols.md, MBP): session login with a `user_session` cookie, the
// X-MBP-Access-Request header, HAL pages. Served under /mbp and, as older
// releases are, under /MBP. As the seed (mbp-rest-api.txt) shows: the cookie
// expires about 30 days after login (lifetimes.mbpCookie) while the server
// deletes the session after 7 days (lifetimes.mbpSession), so a client that
// trusts the cookie's date fails here as in production; pages hold 2000
// entries by default; a device's self link is `{base}/{id}`.

import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import {
  cookie,
  emptyReply,
  header,
  jsonObjectBody,
  jsonReply,
  mediaType,
  type Platform,
  type Reply,
  type SandboxContext,
  type SandboxRequest,
} from './http-kit.js';

const CONTEXT_PATH = '/(mbp|MBP)';
const SESSION_COOKIE = 'user_session';
const DEMO_USER_ID = '607db9061d2ce90bb4b6131b';
/** The page size without a `size` parameter, as the seed's device list shows. */
const DEFAULT_PAGE_SIZE = 2000;

/** MBP's error body: {status: 'NOT_FOUND', statusCode: 404, timestamp, message, detailMessages}. */
function mbpError(statusCode: number, message: string): Reply {
  const status = (STATUS_CODES[statusCode] ?? 'Error').toUpperCase().replace(/[^A-Z]+/g, '_');
  // The seed does not show the timestamp's format; ISO 8601 is assumed.
  return jsonReply(statusCode, { status, statusCode, timestamp: new Date().toISOString(), message, detailMessages: [] });
}

interface Session {
  username: string;
  /** Epoch ms: sessions are deleted server-side at this time, whatever the cookie says. */
  expiresAt: number;
}

/**
 * Parses `requesting-entity-firstname=…;;requesting-entity-lastname=…;;requesting-entity-username=…`.
 * Like the real parser, a pair must be exactly `key=value` with a non-empty value
 * (so a value containing `=` or `;;`, or an empty one, is malformed).
 */
function parseAccessRequest(value: string): Map<string, string> | undefined {
  const fields = new Map<string, string>();
  for (const pair of value.split(';;')) {
    const parts = pair.split('=');
    if (parts.length !== 2 || parts[0].trim() === '' || parts[1] === '') return undefined;
    fields.set(parts[0].trim().toLowerCase(), parts[1]);
  }
  return fields;
}

export function createMbp(context: SandboxContext): Platform {
  const demo = context.demo.mbp;
  const user = {
    id: DEMO_USER_ID,
    username: demo.username,
    firstName: demo.firstName,
    lastName: demo.lastName,
    isSystemUser: false,
    isLoginable: true,
    loginable: true,
    entityType: 'REQUESTING_ENTITY',
    isAdmin: false,
  };
  const sessions = new Map<string, Session>();
  const devices = ['Press line 1', 'Paint booth', 'Conveyor 7'].map((name, index) => ({
    id: `609c9d449672bb5e7177f21${index}`,
    name,
    componentType: 'Computer',
    ipAddress: `192.168.221.${10 + index}`,
    username: 'ubuntu',
    entityType: 'REQUESTED_ENTITY',
    usesPassword: true,
    usesRSAKey: false,
    ownerName: demo.username,
    created: 1620876612940 + index,
    lastModified: 1620876612940 + index,
  }));

  function login(request: SandboxRequest): Reply {
    if (mediaType(request) !== 'application/json') return mbpError(415, 'Content-Type must be application/json');
    const body = jsonObjectBody(request);
    if (!body || typeof body.username !== 'string' || typeof body.password !== 'string') {
      return mbpError(400, 'username and password are required');
    }
    if (body.username !== demo.username) return mbpError(404, `User with username '${body.username}' does not exist.`);
    if (body.password !== demo.password) return mbpError(403, 'Invalid password.');
    const sessionId = randomBytes(12).toString('hex'); // a MongoDB ObjectId's size, as on the real server
    const now = Date.now();
    sessions.set(sessionId, { username: demo.username, expiresAt: now + context.lifetimes.mbpSession * 1000 });
    // The cookie outlives the session (the seed: ~30 days against 7).
    const cookieLifetime = Math.ceil(context.lifetimes.mbpCookie);
    const expires = new Date(now + cookieLifetime * 1000).toUTCString();
    return jsonReply(200, user, {
      'set-cookie': `${SESSION_COOKIE}=${sessionId}; Path=/; Max-Age=${cookieLifetime}; Expires=${expires}; HttpOnly`,
    });
  }

  /** The session's username, if the request carries a live session cookie. */
  function sessionUser(request: SandboxRequest): string | undefined {
    const sessionId = cookie(request, SESSION_COOKIE);
    const session = sessionId === undefined ? undefined : sessions.get(sessionId);
    if (!session) return undefined;
    if (session.expiresAt <= Date.now()) {
      sessions.delete(sessionId!);
      return undefined;
    }
    return session.username;
  }

  /** A live session (else 401, empty body), then an access request header naming the session's user (else 400 or 403). */
  function checkAccess(request: SandboxRequest): Reply | undefined {
    if (sessionUser(request) === undefined) return emptyReply(401);
    const value = header(request, 'x-mbp-access-request');
    if (value === undefined) return mbpError(400, 'The X-MBP-Access-Request header is missing.');
    const fields = parseAccessRequest(value);
    const firstName = fields?.get('requesting-entity-firstname');
    const lastName = fields?.get('requesting-entity-lastname');
    const username = fields?.get('requesting-entity-username');
    if (firstName === undefined || lastName === undefined || username === undefined) {
      return mbpError(400, 'The X-MBP-Access-Request header is malformed.');
    }
    if (firstName !== user.firstName || lastName !== user.lastName || username !== user.username) {
      return mbpError(403, 'The X-MBP-Access-Request header does not match the authenticated user.');
    }
    return undefined;
  }

  /** Spring Data falls back to the default for a page parameter it cannot read. */
  function pageParameter(request: SandboxRequest, name: string, fallback: number, minimum: number): number {
    const value = Number(request.query.get(name) ?? Number.NaN);
    return Number.isInteger(value) && value >= minimum ? value : fallback;
  }

  function listDevices(request: SandboxRequest, [contextPath]: string[]): Reply {
    const denied = checkAccess(request);
    if (denied) return denied;
    const page = pageParameter(request, 'page', 0, 0);
    const size = pageParameter(request, 'size', DEFAULT_PAGE_SIZE, 1);
    const base = `${context.url}/${contextPath}`;
    return jsonReply(
      200,
      {
        _embedded: {
          devices: devices.slice(page * size, (page + 1) * size).map((device) => ({
            ...device,
            _links: { self: { href: `${base}/${device.id}` } },
          })),
        },
        _links: { self: { href: `${base}/api/devices` } },
        page: { size, totalElements: devices.length, totalPages: Math.ceil(devices.length / size), number: page },
      },
      { 'content-type': 'application/hal+json' },
    );
  }

  function getDevice(request: SandboxRequest, [contextPath, id]: string[]): Reply {
    const denied = checkAccess(request);
    if (denied) return denied;
    const device = devices.find((candidate) => candidate.id === id);
    if (!device) return mbpError(404, `Device with id '${id}' does not exist.`);
    return jsonReply(200, { ...device, _links: { self: { href: `${context.url}/${contextPath}/${id}` } } });
  }

  /** Best effort on the client's side; here it ends the session, clears the cookie and redirects to the login page. */
  function logout(request: SandboxRequest, [contextPath]: string[]): Reply {
    const sessionId = cookie(request, SESSION_COOKIE);
    if (sessionId !== undefined) sessions.delete(sessionId);
    return emptyReply(302, {
      location: `/${contextPath}/login?logout`,
      'set-cookie': `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly`,
    });
  }

  return {
    name: 'mbp',
    routes: [
      { endpoint: 'mbp.login', path: new RegExp(`^${CONTEXT_PATH}/api/users/login$`), methods: { POST: login } },
      { endpoint: 'mbp.logout', path: new RegExp(`^${CONTEXT_PATH}/logout$`), methods: { GET: logout, POST: logout } },
      { endpoint: 'mbp.devices', path: new RegExp(`^${CONTEXT_PATH}/api/devices$`), methods: { GET: listDevices } },
      { endpoint: 'mbp.devices', path: new RegExp(`^${CONTEXT_PATH}/api/devices/([^/]+)$`), methods: { GET: getDevice } },
    ],
    authenticates: async (request) => sessionUser(request) !== undefined,
    revoke: () => sessions.clear(),
    settle: async () => undefined,
  };
}
