import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/sandbox/index.js';
import { MBP_SYSTEM_USERNAMES } from '../../src/sandbox/mbp.js';
import { mbpLogin, mbpSandbox, postJson } from './helpers.js';

/**
 * The sandbox's MBP against MBP's own server source (IPVS-AS/MBP, commit
 * 57c81313, Spring Boot 2.6.1), over real HTTP. Each row names the MBP file
 * and line it follows (paths below src/main/java/de/ipvs/as/mbp/), or
 * "[Spring Boot 2.6 default]" where the behaviour comes from Spring, not an
 * MBP line. docs/protocols.md (MBP) lists the same facts.
 */
describe('sandbox: MBP as its server source says', () => {
  const suite = mbpSandbox();
  let sandbox: Sandbox;
  let base: string;
  before(() => ({ sandbox, base } = suite));

  const UNEXPECTED = 'An unexpected internal error occurred.';
  const devices = (headers: Record<string, string>, query = '') => fetch(`${base}/api/devices${query}`, { headers });
  async function session(): Promise<{ cookie: string; 'x-mbp-access-request': string }> {
    return mbpLogin(sandbox);
  }
  async function expectMbpError(response: Response, status: number, message: string | RegExp): Promise<void> {
    assert.equal(response.status, status);
    const body = (await response.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['detailMessages', 'message', 'status', 'statusCode', 'timestamp']);
    assert.equal(body.statusCode, status);
    if (typeof message === 'string') assert.equal(body.message, message);
    else assert.match(String(body.message), message);
  }
  async function expectEmpty(response: Response, status: number): Promise<void> {
    assert.equal(response.status, status);
    assert.equal(await response.text(), '');
  }

  describe('access header (domain/access_control/ACAccessRequest.java:51-61, ACAttributeKey.java:13-35,75-82)', () => {
    it('no key is required: one piece, unknown keys, or a header naming another user all work [ACAccessRequest.java:54-57, ACAttributeKey.java:75-82]', async () => {
      const { cookie } = await session();
      for (const value of [
        'requesting-entity-username=someone-else',
        'colour=blue',
        'requesting-entity-FIRSTNAME=Grace;;requesting-entity-lastname=Hopper',
        'a=b;;',
      ]) {
        assert.equal((await devices({ cookie, 'x-mbp-access-request': value })).status, 200, value);
      }
    });

    it('what a user sees depends on the session alone: the header is never compared with the logged-in user [RestDeviceController.java:66-78, UserEntityService.java:300-327]', async () => {
      const { cookie, 'x-mbp-access-request': own } = await session();
      const asSelf = (await (await devices({ cookie, 'x-mbp-access-request': own })).json()) as { _embedded: { devices: unknown[] } };
      const asOther = (await (await devices({ cookie, 'x-mbp-access-request': 'requesting-entity-username=grace' })).json()) as {
        _embedded: { devices: unknown[] };
      };
      assert.deepEqual(asOther._embedded.devices, asSelf._embedded.devices);
    });

    it('a piece without "=" or with an empty value is a 500 with MBP\'s error body [ACAccessRequest.java:56-57 (ArrayIndexOutOfBounds), RestExceptionHandler.java:139-149]', async () => {
      const { cookie } = await session();
      for (const value of [
        'requesting-entity-firstname',
        'requesting-entity-firstname=',
        'requesting-entity-firstname=Ada;;requesting-entity-lastname=',
        ';;a=b',
        'a=b;;;;c=d',
        '',
      ]) {
        await expectMbpError(await devices({ cookie, 'x-mbp-access-request': value }), 500, UNEXPECTED);
      }
    });

    it('an extra "=" silently cuts the value: still a 200 [ACAccessRequest.java:56-57]', async () => {
      const { cookie } = await session();
      assert.equal((await devices({ cookie, 'x-mbp-access-request': 'requesting-entity-firstname=A=B' })).status, 200);
    });

    it('a missing header is a 400 with an empty body [RestDeviceController.java:67 @RequestHeader; Spring Boot 2.6 default: MissingRequestHeaderException, no body]', async () => {
      const { cookie } = await session();
      await expectEmpty(await devices({ cookie }), 400);
    });
  });

  describe('login (web/rest/RestUserController.java:93-118, service/user/UserService.java:113-119)', () => {
    const login = (body: unknown, headers: Record<string, string> = {}) => postJson(`${base}/api/users/login`, body, headers);

    it('the username is lower-cased before the look-up [RestUserController.java:101]', async () => {
      const { username, password } = sandbox.demo.mbp;
      const response = await login({ username: username.toUpperCase(), password });
      assert.equal(response.status, 200);
      assert.equal(((await response.json()) as { username: string }).username, username);
    });

    it('an unknown user is 404 "User with username \'…\' does not exist!", the name lower-cased [UserService.java:117-118, RestExceptionHandler.java:123-131]', async () => {
      await expectMbpError(await login({ username: 'NoBody', password: 'x' }), 404, "User with username 'nobody' does not exist!");
    });

    it('a wrong password is 403 "Invalid password!" [RestUserController.java:109-110, InvalidPasswordException.java:18, RestExceptionHandler.java:74-79]', async () => {
      await expectMbpError(await login({ username: sandbox.demo.mbp.username, password: 'wrong' }), 403, 'Invalid password!');
    });

    it('a system user is 403 whatever the password [RestUserController.java:104-105, DefaultEntitiesConfiguration.java:80-92, RestExceptionHandler.java:88-93]', async () => {
      for (const username of MBP_SYSTEM_USERNAMES) {
        const response = await login({ username, password: 'anything' });
        await expectMbpError(response, 403, 'This user is a system user and thus login is impossible.');
        assert.equal(response.headers.get('set-cookie'), null);
      }
    });

    it("a missing field is a 500 with MBP's error body [RestUserController.java:101 (NullPointerException), RestExceptionHandler.java:139-149]", async () => {
      await expectMbpError(await login({ password: 'x' }), 500, UNEXPECTED);
      await expectMbpError(await login({ username: sandbox.demo.mbp.username }), 500, UNEXPECTED);
    });

    it('malformed JSON is a 400 and a wrong content type a 415, both with empty bodies [RestExceptionHandler.java:17 extends ResponseEntityExceptionHandler; Spring Boot 2.6 default]', async () => {
      const raw = (body: string, type: string) => fetch(`${base}/api/users/login`, { method: 'POST', headers: { 'content-type': type }, body });
      await expectEmpty(await raw('{"username":', 'application/json'), 400);
      await expectEmpty(await raw('[]', 'application/json'), 400);
      const { username, password } = sandbox.demo.mbp;
      await expectEmpty(await raw(JSON.stringify({ username, password }), 'text/plain'), 415);
    });
  });

  describe('session (service/user/UserSessionService.java, SecurityConfiguration.java)', () => {
    it('the cookie: user_session=<id>; Path=/; Max-Age=2592000; HttpOnly; SameSite=strict [UserSessionService.java:116-119; attribute order and Expires: Spring Boot 2.6 default, ResponseCookie]', async () => {
      const { username, password } = sandbox.demo.mbp;
      const response = await postJson(`${base}/api/users/login`, { username, password });
      assert.match(response.headers.get('set-cookie')!, /^user_session=[0-9a-f]{24}; Path=\/; Max-Age=2592000; Expires=[^;]+ GMT; HttpOnly; SameSite=strict$/);
    });

    it('a missing or unknown session is 401 with an empty body, no redirect [SecurityConfiguration.java:76,79-80]', async () => {
      const { 'x-mbp-access-request': access } = await session();
      await expectEmpty(await devices({ 'x-mbp-access-request': access }), 401);
      await expectEmpty(await devices({ cookie: 'user_session=000000000000000000000000', 'x-mbp-access-request': access }), 401);
    });

    it('the sweep deletes sessions older than the lifetime, at start and every seventh of it: a session lives 7 to 8 days [UserSessionService.java:144-153]', async function () {
      this.timeout(10_000);
      sandbox.lifetimes.mbpSession = 0.7; // sweeps every 0.1 s
      const loggedInAt = Date.now();
      const headers = await session();
      let endedAt = 0;
      while (Date.now() - loggedInAt < 3000) {
        const status = (await devices(headers)).status;
        if (status === 401) {
          endedAt = Date.now();
          break;
        }
        assert.equal(status, 200);
      }
      assert.ok(endedAt > 0, 'the session ended');
      const lived = endedAt - loggedInAt;
      assert.ok(lived >= 700, `not before the lifetime: ${lived} ms`);
      assert.ok(lived < 800 + 400, `by the first sweep after it (plus time for the requests): ${lived} ms`);
    });

    it('logout: any method on /logout, a 302 to <context>/login, the cookie cleared for <context>/, the session ended [SecurityConfiguration.java:69-73, UserSessionCookieFilter.java:76-85; cookie format: Spring Boot 2.6 default]', async () => {
      for (const [contextPath, method] of [
        ['mbp', 'GET'],
        ['mbp', 'POST'],
        ['MBP', 'DELETE'],
      ] as const) {
        const headers = await mbpLogin(sandbox, contextPath);
        const response = await fetch(`${sandbox.url}/${contextPath}/logout`, { method, headers: { cookie: headers.cookie }, redirect: 'manual' });
        assert.equal(response.status, 302);
        assert.equal(response.headers.get('location'), `/${contextPath}/login`);
        assert.match(response.headers.get('set-cookie')!, new RegExp(`^user_session=; Max-Age=0; .*Path=/${contextPath}/$`));
        assert.equal((await fetch(`${sandbox.url}/${contextPath}/api/devices`, { headers })).status, 401);
      }
    });
  });

  describe('lists (WebServletConfiguration.java:44-49, util/Pages.java:35-39,63-65, service/user/UserEntityService.java:429-436)', () => {
    type Page = {
      _embedded?: Record<string, Array<{ id: string; name: string; _links: { self: { href: string } } }>>;
      page: Record<string, number>;
      _links: { self: { href: string } };
    };
    const page = async (headers: Record<string, string>, query: string, list = 'devices'): Promise<Page> => {
      const response = await fetch(`${base}/api/${list}${query}`, { headers });
      assert.equal(response.status, 200, query);
      return (await response.json()) as Page;
    };

    it('without size, or with a size above 2000, a page holds up to 2000 items [WebServletConfiguration.java:46-47 (fallback Integer.MAX_VALUE); the 2000 cap: Spring Boot 2.6 default, Spring Data max page size]', async () => {
      const headers = await session();
      for (const query of ['', '?size=5000', '?size=0', '?size=abc']) assert.equal((await page(headers, query)).page.size, 2000, query);
    });

    it('totalElements is the number of items on this page [Pages.java:63-65, UserEntityService.java:431]', async () => {
      const headers = await session();
      assert.deepEqual((await page(headers, '?page=0&size=2')).page, { size: 2, totalElements: 2, totalPages: 1, number: 0 });
      assert.deepEqual((await page(headers, '?page=1&size=2')).page, { size: 2, totalElements: 1, totalPages: 1, number: 1 });
    });

    it('a page past the end is a 500; the page just at the end is empty, without _embedded [Pages.java:35-39 (List.subList); empty _embedded left out: Spring Boot 2.6 default, Spring HATEOAS]', async () => {
      const headers = await session();
      const atEnd = await page(headers, '?page=1&size=3');
      assert.equal(atEnd._embedded, undefined);
      assert.deepEqual(atEnd.page, { size: 3, totalElements: 0, totalPages: 0, number: 1 });
      await expectMbpError(await devices(headers, '?page=2&size=2'), 500, UNEXPECTED);
    });

    it('items are sorted by name, only those the user owns; each self link is {base}/{id} [UserEntityService.java:38,62-64,318-325,435]', async () => {
      const headers = await session();
      const items = (await page(headers, ''))._embedded!.devices!;
      assert.deepEqual(
        items.map((d) => d.name),
        ['Conveyor 7', 'Paint booth', 'Press line 1'],
      );
      for (const item of items) assert.equal(item._links.self.href, `${base}/${item.id}`);
    });

    it('/api/sensors has the same shape, under _embedded.sensors [web/rest/RestSensorController.java:39,59-76]', async () => {
      const headers = await session();
      const sensors = await page(headers, '', 'sensors');
      assert.ok(sensors._embedded!.sensors!.length > 0);
      for (const item of sensors._embedded!.sensors!) assert.equal(item._links.self.href, `${base}/${item.id}`);
      await expectEmpty(await fetch(`${base}/api/sensors`, { headers: { cookie: headers.cookie } }), 400);
    });

    it('an unknown id is a 500 (EntityNotFoundException has no handler of its own) [UserEntityService.java:127, RestExceptionHandler.java:139-149]', async () => {
      const headers = await session();
      await expectMbpError(await fetch(`${base}/api/devices/000000000000000000000000`, { headers }), 500, UNEXPECTED);
      await expectMbpError(await fetch(`${base}/api/sensors/000000000000000000000000`, { headers }), 500, UNEXPECTED);
    });

    it("another user's entity is a 401 with MBP's error body, not a lost session [UserEntityService.java:133-135,409-412, MissingPermissionException.java:36, RestExceptionHandler.java:53-58]", async () => {
      const headers = await session();
      await expectMbpError(
        await fetch(`${base}/api/devices/609c9d449672bb5e7177f299`, { headers }),
        401,
        "Missing permission 'READ' for Entity with id '609c9d449672bb5e7177f299'.",
      );
    });
  });

  describe('error bodies (error/ApiError.java:16-39, util/InstantToStringSerializer.java:21-27)', () => {
    it("detailMessages is an object, the timestamp German medium dd.MM.yyyy HH:mm:ss in the server's zone [ApiError.java:19-22, InstantToStringSerializer.java:22-26]", async () => {
      const before = new Date();
      const response = await postJson(`${base}/api/users/login`, { username: 'nobody', password: 'x' });
      const body = (await response.json()) as { status: string; detailMessages: unknown; timestamp: string };
      assert.equal(body.status, 'NOT_FOUND');
      assert.deepEqual(body.detailMessages, {});
      const match = /^(\d{2})\.(\d{2})\.(\d{4}) (\d{2}):(\d{2}):(\d{2})$/.exec(body.timestamp);
      assert.ok(match, body.timestamp);
      const [, day, month, year, hour, minute, second] = match.map(Number);
      const stamped = new Date(year!, month! - 1, day!, hour!, minute!, second!).getTime();
      assert.ok(stamped >= Math.floor(before.getTime() / 1000) * 1000 && stamped <= Date.now(), `${body.timestamp} is now, local time`);
    });
  });
});
