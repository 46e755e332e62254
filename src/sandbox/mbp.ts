// MBP (docs/protocols.md, MBP), as its server's source (IPVS-AS/MBP, commit
// 57c81313, Spring Boot 2.6.1) behaves: session login with a `user_session`
// cookie, the X-MBP-Access-Request header parsed but never compared with the
// session's user, HAL pages from an in-memory list. Served under /mbp and, as
// older releases are, under /MBP. Each rule names the MBP file it follows.

import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { cookie, emptyReply, header, jsonReply, mediaType, type Platform, type Reply, type SandboxContext, type SandboxRequest } from './http-kit.js';

const CONTEXT_PATH = '/(mbp|MBP)';
const SESSION_COOKIE = 'user_session';
const DEMO_USER_ID = '607db9061d2ce90bb4b6131b';
/** Spring Data's largest page size; without `size` the fallback (Integer.MAX_VALUE) is cut to it (WebServletConfiguration). */
const MAX_PAGE_SIZE = 2000;
const INT_MAX = 2 ** 31 - 1;
/** RestExceptionHandler.handleException: every exception without a handler of its own. */
const UNEXPECTED = 'An unexpected internal error occurred.';
/** The session sweep runs every 24 h for sessions older than 7 days (UserSessionService): a seventh of the lifetime. */
const SWEEPS_PER_LIFETIME = 7;

/** MBP's default users that cannot log in (DefaultEntitiesConfiguration): "system users". */
export const MBP_SYSTEM_USERNAMES = ['mbp', 'device-client'] as const;

/** MBP's ApiError: {status: 'NOT_FOUND', statusCode: 404, timestamp: '04.04.2022 12:00:12', message, detailMessages: {}}. */
function mbpError(statusCode: number, message: string): Reply {
  const status = (STATUS_CODES[statusCode] ?? 'Error').toUpperCase().replace(/[^A-Z]+/g, '_');
  return jsonReply(statusCode, { status, statusCode, timestamp: germanMediumTimestamp(new Date()), message, detailMessages: {} });
}

/** InstantToStringSerializer: FormatStyle.MEDIUM, Locale.GERMAN, the server's zone, the comma removed. */
export function germanMediumTimestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getDate())}.${two(date.getMonth() + 1)}.${date.getFullYear()} ${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/** Java's String.split: no match gives the text itself; otherwise trailing empty strings are dropped (all of them, for ";;"). */
function javaSplit(text: string, separator: string): string[] {
  if (!text.includes(separator)) return [text];
  const parts = text.split(separator);
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/**
 * ACAccessRequest.valueOf: split on `;;`, each piece on `=`, key = part 0,
 * value = part 1 (so a second `=` cuts the value short). A piece with no value
 * throws ArrayIndexOutOfBounds (a 500). Keys are matched exactly
 * (ACAttributeKey.forId); unknown ones are kept as NULL and ignored.
 */
function parseAccessRequest(value: string): Map<string, string> | undefined {
  const attributes = new Map<string, string>();
  for (const piece of javaSplit(value, ';;')) {
    const keyValue = javaSplit(piece, '=');
    if (keyValue.length < 2) return undefined;
    attributes.set(keyValue[0], keyValue[1]);
  }
  return attributes;
}

/**
 * Spring Data's PageableHandlerMethodArgumentResolver with MBP's fallback
 * PageRequest.of(0, Integer.MAX_VALUE): a number is clamped to [0, upper], text
 * is 0, a size below 1 is the fallback's, and every size is at most 2000.
 */
function pageRequest(request: SandboxRequest): { page: number; size: number } {
  const parse = (name: string, upper: number): number | undefined => {
    const text = request.query.get(name);
    if (text === null || text.trim() === '') return undefined;
    if (!/^[+-]?\d+$/.test(text) || Math.abs(Number(text)) > INT_MAX) return 0;
    return Math.min(Math.max(Number(text), 0), upper);
  };
  const page = parse('page', INT_MAX) ?? 0;
  const size = parse('size', MAX_PAGE_SIZE) ?? INT_MAX;
  return { page, size: Math.min(size < 1 ? INT_MAX : size, MAX_PAGE_SIZE) };
}

interface User {
  id: string;
  username: string;
  password: string;
  firstName: string;
  lastName: string;
  isAdmin: boolean;
  isSystemUser: boolean;
  isLoginable: boolean;
}

interface Session {
  userId: string;
  /** Epoch ms: from here on, the next sweep deletes the session. */
  sweepableAt: number;
  /** How often the sweep runs for this session's lifetime (ms). */
  sweepEveryMs: number;
}

interface Entity {
  id: string;
  name: string;
  ownerId: string;
  [field: string]: unknown;
}

export function createMbp(context: SandboxContext): Platform {
  const demo = context.demo.mbp;
  const startedAt = Date.now();
  const users: User[] = [
    {
      id: DEMO_USER_ID,
      username: demo.username,
      password: demo.password,
      firstName: demo.firstName,
      lastName: demo.lastName,
      isAdmin: false,
      isSystemUser: false,
      isLoginable: true,
    },
    // Another user, who owns an entity the demo user has no permission for.
    {
      id: '607db9061d2ce90bb4b6131c',
      username: 'grace',
      password: randomBytes(12).toString('hex'),
      firstName: 'Grace',
      lastName: 'Hopper',
      isAdmin: false,
      isSystemUser: false,
      isLoginable: true,
    },
    ...MBP_SYSTEM_USERNAMES.map((username, index) => ({
      id: `607db9061d2ce90bb4b6132${index}`,
      username,
      password: randomBytes(12).toString('hex'),
      firstName: username === 'mbp' ? 'MBP' : 'Device',
      lastName: username === 'mbp' ? 'Platform' : 'Client',
      isAdmin: false,
      isSystemUser: true,
      isLoginable: false,
    })),
  ];
  const sessions = new Map<string, Session>();
  const devices: Entity[] = [
    ...['Press line 1', 'Paint booth', 'Conveyor 7'].map((name, index) => ({
      id: `609c9d449672bb5e7177f21${index}`,
      name,
      componentType: 'Computer',
      ipAddress: `192.168.221.${10 + index}`,
      username: 'ubuntu',
      entityType: 'REQUESTED_ENTITY',
      usesPassword: true,
      usesRSAKey: false,
      ownerId: DEMO_USER_ID,
      ownerName: demo.username,
      created: 1620876612940 + index,
      lastModified: 1620876612940 + index,
    })),
    {
      id: '609c9d449672bb5e7177f299',
      name: 'Lab robot',
      componentType: 'Computer',
      ipAddress: '192.168.221.99',
      username: 'ubuntu',
      entityType: 'REQUESTED_ENTITY',
      usesPassword: true,
      usesRSAKey: false,
      ownerId: users[1].id,
      ownerName: 'grace',
      created: 1620876612999,
      lastModified: 1620876612999,
    },
  ];
  const sensors: Entity[] = ['Temperature press 1', 'Humidity booth'].map((name, index) => ({
    id: `609c9d449672bb5e7177f31${index}`,
    name,
    componentType: index === 0 ? 'Temperature' : 'Humidity',
    deviceId: devices[index].id,
    entityType: 'REQUESTED_ENTITY',
    ownerId: DEMO_USER_ID,
    ownerName: demo.username,
  }));

  function publicUser(user: User): Record<string, unknown> {
    // User's JSON: the password is WRITE_ONLY; isAdmin, isSystemUser and isLoginable are read-only fields.
    return {
      id: user.id,
      username: user.username,
      firstName: user.firstName,
      lastName: user.lastName,
      isAdmin: user.isAdmin,
      isSystemUser: user.isSystemUser,
      isLoginable: user.isLoginable,
      loginable: user.isLoginable,
      entityType: 'REQUESTING_ENTITY',
    };
  }

  /**
   * The login body as Jackson reads UserLoginData: 'unreadable' (a 400) for a
   * body that is not a JSON object or a field that is an object or array; a
   * number or boolean becomes its text; a missing field is null.
   */
  function loginData(request: SandboxRequest): { username: string | null; password: string | null } | 'unreadable' {
    let body: unknown;
    try {
      body = JSON.parse(request.body.toString('utf8'));
    } catch {
      return 'unreadable';
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'unreadable';
    const field = (value: unknown): string | null | 'unreadable' => {
      if (value === undefined || value === null) return null;
      if (typeof value === 'object') return 'unreadable';
      return String(value);
    };
    const username = field((body as Record<string, unknown>).username);
    const password = field((body as Record<string, unknown>).password);
    if (username === 'unreadable' || password === 'unreadable') return 'unreadable';
    return { username, password };
  }

  /** RestUserController.login. */
  function login(request: SandboxRequest): Reply {
    // Jackson reads application/json and application/*+json; anything else is a 415, without a body.
    const type = mediaType(request);
    if (type !== 'application/json' && !/^application\/[^/]+\+json$/.test(type)) return emptyReply(415);
    const data = loginData(request);
    if (data === 'unreadable') return emptyReply(400);
    // loginData.getUsername().toLowerCase(): a missing username is a NullPointerException.
    if (data.username === null) return mbpError(500, UNEXPECTED);
    const username = data.username.toLowerCase();
    const user = users.find((candidate) => candidate.username === username);
    if (!user) return mbpError(404, `User with username '${username}' does not exist!`);
    if (!user.isLoginable) return mbpError(403, 'This user is a system user and thus login is impossible.');
    // BCryptPasswordEncoder.matches(null, …) throws.
    if (data.password === null) return mbpError(500, UNEXPECTED);
    if (data.password !== user.password) return mbpError(403, 'Invalid password!');
    const sessionId = randomBytes(12).toString('hex'); // a MongoDB ObjectId's size, as on the real server
    const now = Date.now();
    const lifetimeMs = context.lifetimes.mbpSession * 1000;
    sessions.set(sessionId, { userId: user.id, sweepableAt: now + lifetimeMs, sweepEveryMs: lifetimeMs / SWEEPS_PER_LIFETIME });
    // UserSessionService.createSessionCookie: maxAge 30 days, sameSite "strict", httpOnly, path "/"; ResponseCookie's order.
    const cookieLifetime = Math.ceil(context.lifetimes.mbpCookie);
    const expires = new Date(now + cookieLifetime * 1000).toUTCString();
    return jsonReply(200, publicUser(user), {
      'set-cookie': `${SESSION_COOKIE}=${sessionId}; Path=/; Max-Age=${cookieLifetime}; Expires=${expires}; HttpOnly; SameSite=strict`,
    });
  }

  /** The session's user (UserSessionCookieFilter), unless the sweep has deleted the session. */
  function sessionUser(request: SandboxRequest): User | undefined {
    const sessionId = cookie(request, SESSION_COOKIE);
    const session = sessionId ? sessions.get(sessionId) : undefined;
    if (!sessionId || !session) return undefined;
    // Sweeps run at start and every sweepEveryMs; each deletes the sessions past their lifetime.
    const now = Date.now();
    const lastSweep = startedAt + Math.floor((now - startedAt) / session.sweepEveryMs) * session.sweepEveryMs;
    if (session.sweepableAt < lastSweep) {
      sessions.delete(sessionId);
      return undefined;
    }
    return users.find((user) => user.id === session.userId);
  }

  /**
   * What every API call goes through: a session (else 401 with no body,
   * SecurityConfiguration's HttpStatusEntryPoint), the access-request header
   * (missing: 400 with no body; unreadable: 500). The header is never compared
   * with the session's user: what a user sees depends on the session alone.
   */
  function withAccess(handler: (request: SandboxRequest, params: string[], user: User) => Reply) {
    return (request: SandboxRequest, params: string[]): Reply => {
      const user = sessionUser(request);
      if (!user) return emptyReply(401);
      const value = header(request, 'x-mbp-access-request');
      if (value === undefined) return emptyReply(400);
      if (!parseAccessRequest(value)) return mbpError(500, UNEXPECTED);
      return handler(request, params, user);
    };
  }

  /** UserEntityService: an entity is the user's if they own it (or are admin); the demo has no access policies. */
  const visibleTo = (user: User, entity: Entity) => user.isAdmin || entity.ownerId === user.id;

  function entityModel(entity: Entity, contextPath: string): Record<string, unknown> {
    const { ownerId: _ownerId, ...fields } = entity;
    // entityToEntityModel: linkTo(UserEntityService.class) has no path of its own, so the self link is {base}/{id}.
    return { ...fields, _links: { self: { href: `${context.url}/${contextPath}/${entity.id}` } } };
  }

  /** RestDeviceController.all and RestSensorController.all: Pages.page of the sorted, filtered list. */
  function listOf(entities: Entity[], relation: string) {
    return withAccess((request, [contextPath], user) => {
      const { page, size } = pageRequest(request);
      const all = entities.filter((entity) => visibleTo(user, entity)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const start = page * size;
      // List.subList(start, end) with start past the end throws: a 500.
      if (start > all.length) return mbpError(500, UNEXPECTED);
      const items = all.slice(start, start + size).map((entity) => entityModel(entity, contextPath));
      const base = `${context.url}/${contextPath}`;
      return jsonReply(
        200,
        {
          // Spring HATEOAS leaves out an empty _embedded.
          ...(items.length > 0 ? { _embedded: { [relation]: items } } : {}),
          _links: { self: { href: `${base}/api/${relation}` } },
          // Pages.metaDataOf(pageable, items on this page): totalElements counts this page only.
          page: { size, totalElements: items.length, totalPages: items.length === 0 ? 0 : Math.ceil(items.length / size), number: page },
        },
        { 'content-type': 'application/hal+json' },
      );
    });
  }

  /** getForIdWithAccessControlCheck: an unknown id is an EntityNotFoundException, which no handler maps (a 500). */
  function oneOf(entities: Entity[]) {
    return withAccess((_request, [contextPath, id], user) => {
      const entity = entities.find((candidate) => candidate.id === id);
      if (!entity) return mbpError(500, UNEXPECTED);
      if (!visibleTo(user, entity)) return mbpError(401, `Missing permission 'READ' for Entity with id '${id}'.`);
      return jsonReply(200, entityModel(entity, contextPath), { 'content-type': 'application/hal+json' });
    });
  }

  /**
   * Spring Security's logout on /logout, any method (SecurityConfiguration):
   * the session deleted, the cookie cleared for `<context>/`, a 302 to
   * `<context>/login` (UserSessionCookieFilter.onLogoutSuccess).
   */
  function logout(request: SandboxRequest, [contextPath]: string[]): Reply {
    const sessionId = cookie(request, SESSION_COOKIE);
    if (sessionId !== undefined) sessions.delete(sessionId);
    return emptyReply(302, {
      location: `/${contextPath}/login`,
      'set-cookie': `${SESSION_COOKIE}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:10 GMT; Path=/${contextPath}/`,
    });
  }

  return {
    name: 'mbp',
    routes: [
      { endpoint: 'mbp.login', path: new RegExp(`^${CONTEXT_PATH}/api/users/login$`), methods: { POST: login } },
      { endpoint: 'mbp.logout', path: new RegExp(`^${CONTEXT_PATH}/logout$`), methods: { '*': logout } },
      { endpoint: 'mbp.devices', path: new RegExp(`^${CONTEXT_PATH}/api/devices$`), methods: { GET: listOf(devices, 'devices') } },
      { endpoint: 'mbp.devices', path: new RegExp(`^${CONTEXT_PATH}/api/devices/([^/]+)$`), methods: { GET: oneOf(devices) } },
      { endpoint: 'mbp.sensors', path: new RegExp(`^${CONTEXT_PATH}/api/sensors$`), methods: { GET: listOf(sensors, 'sensors') } },
      { endpoint: 'mbp.sensors', path: new RegExp(`^${CONTEXT_PATH}/api/sensors/([^/]+)$`), methods: { GET: oneOf(sensors) } },
    ],
    authenticates: async (request) => sessionUser(request) !== undefined,
    revoke: () => sessions.clear(),
    settle: async () => undefined,
  };
}
