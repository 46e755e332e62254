import assert from 'node:assert/strict';
import type { Sandbox } from '../../src/sandbox/index.js';
import { mbpLogin, mbpSandbox, postJson } from './helpers.js';

describe('sandbox: MBP', () => {
  const suite = mbpSandbox();
  let sandbox: Sandbox;
  let base: string;
  before(() => ({ sandbox, base } = suite));

  it('logs in: the user as JSON and a user_session cookie that expires about 30 days later (as the seed shows)', async () => {
    const { username, password, firstName, lastName } = sandbox.demo.mbp;
    const response = await postJson(`${base}/api/users/login`, { username, password });
    assert.equal(response.status, 200);
    const user = (await response.json()) as Record<string, unknown>;
    assert.equal(user.username, username);
    assert.equal(user.firstName, firstName);
    assert.equal(user.lastName, lastName);
    assert.equal(typeof user.id, 'string');
    assert.equal(typeof user.isAdmin, 'boolean');
    const setCookie = response.headers.get('set-cookie')!;
    const match = /^user_session=[0-9a-f]{24}; Path=\/; Max-Age=2592000; Expires=([^;]+); HttpOnly; SameSite=strict$/.exec(setCookie);
    assert.ok(match, setCookie);
    const days = (Date.parse(match[1]) - Date.now()) / (24 * 3600 * 1000);
    assert.ok(days > 29.9 && days <= 30, `the cookie expires in ${days} days`);
  });

  it('answers 404 to an unknown user and 403 to a wrong password, with MBP error bodies', async () => {
    const unknown = await postJson(`${base}/api/users/login`, { username: 'nobody', password: 'x' });
    assert.equal(unknown.status, 404);
    const body = (await unknown.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['detailMessages', 'message', 'status', 'statusCode', 'timestamp']);
    assert.equal(body.statusCode, 404);
    const wrong = await postJson(`${base}/api/users/login`, { username: sandbox.demo.mbp.username, password: 'wrong' });
    assert.equal(wrong.status, 403);
    assert.equal(((await wrong.json()) as { statusCode: number }).statusCode, 403);
    assert.equal(wrong.headers.get('set-cookie'), null);
  });

  it('serves a HAL page of devices to a session, also under /MBP', async () => {
    for (const contextPath of ['mbp', 'MBP']) {
      const headers = await mbpLogin(sandbox, contextPath);
      const response = await fetch(`${sandbox.url}/${contextPath}/api/devices?page=0&size=2`, { headers });
      assert.equal(response.status, 200);
      const page = (await response.json()) as { _embedded: { devices: unknown[] }; page: Record<string, number>; _links: unknown };
      assert.equal(page._embedded.devices.length, 2);
      assert.deepEqual(
        page.page,
        { size: 2, totalElements: 2, totalPages: 1, number: 0 },
        'totalElements counts this page (test/sandbox/mbp-fidelity.test.ts)',
      );
      assert.ok(page._links);
    }
  });

  it("pages hold 2000 entries without a size; a device's self link is {base}/{id}, as the seed shows", async () => {
    const headers = await mbpLogin(sandbox);
    const response = await fetch(`${base}/api/devices`, { headers });
    const page = (await response.json()) as { _embedded: { devices: Array<{ id: string; _links: { self: { href: string } } }> }; page: Record<string, number> };
    assert.deepEqual(page.page, { size: 2000, totalElements: 3, totalPages: 1, number: 0 });
    for (const device of page._embedded.devices) assert.equal(device._links.self.href, `${base}/${device.id}`);
    const one = (await (await fetch(`${base}/api/devices/${page._embedded.devices[0].id}`, { headers })).json()) as { _links: { self: { href: string } } };
    assert.equal(one._links.self.href, `${base}/${page._embedded.devices[0].id}`);
  });

  it('answers 401 with an empty body without a live session', async () => {
    const { 'x-mbp-access-request': accessRequest } = await mbpLogin(sandbox);
    for (const cookie of [undefined, 'user_session=000000000000000000000000']) {
      const headers: Record<string, string> = { 'x-mbp-access-request': accessRequest };
      if (cookie) headers.cookie = cookie;
      const response = await fetch(`${base}/api/devices`, { headers });
      assert.equal(response.status, 401);
      assert.equal(await response.text(), '');
      assert.equal(response.headers.get('location'), null, 'no redirect');
    }
  });

  it('logs out with a 302 that ends the session', async () => {
    const headers = await mbpLogin(sandbox);
    const response = await fetch(`${base}/logout`, { headers: { cookie: headers.cookie }, redirect: 'manual' });
    assert.equal(response.status, 302);
    assert.ok(response.headers.get('location'));
    assert.equal((await fetch(`${base}/api/devices`, { headers })).status, 401);
    assert.equal(sandbox.calls('mbp.logout'), 1);
  });

  it('revokeTokens() ends every session', async () => {
    const headers = await mbpLogin(sandbox);
    sandbox.revokeTokens();
    assert.equal((await fetch(`${base}/api/devices`, { headers })).status, 401);
  });
});
