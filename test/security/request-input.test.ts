import assert from 'node:assert/strict';
import { ENDPOINT_NAMES, type Sandbox } from '../../src/sandbox/index.js';
import type { NodeMessage } from '../../src/nodes/node-red.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { PLATFORM_CASES, platformFlow, type PlatformCase } from '../helpers/platform-flows.js';
import { ALL_MODULES, assertNoLeaks, expectError, loadAgent, outcomeOf, securitySuite, type Outcome } from './harness.js';

/**
 * Attack (or a flow ported from the core http request node): a message whose
 * headers HTTP cannot carry (CR or LF to smuggle in a second header or
 * request, NUL, a name that is not a token), or whose URL carries
 * `user:password@`. Each case: INPUT_INVALID naming the header (never its
 * value) or the userinfo's place, exactly one error, nothing at all reached
 * the sandbox (not even a token request), and the value or the password
 * appears nowhere the node writes.
 */
describe('security: headers and URLs of a message are checked before anything is sent', function () {
  this.timeout(60_000);
  const suite = securitySuite('request-input');
  let sandbox: Sandbox;
  before(() => {
    ({ sandbox } = suite);
  });

  /** Every request the sandbox counted, on any of its endpoints: a token request, an API call, the echo. */
  const sandboxCalls = () => ENDPOINT_NAMES.reduce((sum, endpoint) => sum + sandbox.calls(endpoint), 0);
  const oauth2 = PLATFORM_CASES.find((c) => c.platform === 'oauth2')!;

  /**
   * The secret appears nowhere the runtime wrote (log, status, warnings,
   * errors, outputs, flows) but in the flow's own property, which every
   * Node-RED node passes on unchanged to a Catch node with the message: those
   * exact serialised forms are taken out of the text before it is searched.
   * The error itself is searched whole first, so the node quoting the value
   * exactly is caught too.
   */
  function assertNowhere(secret: string, outcome: Outcome, ownProperties: unknown[], context: string): void {
    assert.ok(!JSON.stringify(outcome.error ?? {}).includes(secret), `${context}: the error quotes it: ${outcome.error?.message}`);
    let text = H.emitted();
    for (const own of ownProperties) text = text.split(JSON.stringify(own)).join("<the flow's own>");
    const at = text.indexOf(secret);
    assert.equal(at, -1, `${context}: found in what the runtime emitted: …${text.slice(Math.max(0, at - 120), at + secret.length + 40)}…`);
  }

  describe('msg.headers that HTTP cannot carry: INPUT_INVALID naming the header, no token request, nothing sent', () => {
    const VALUE_SECRET = 'hdr-value-secret-7f3a';
    const values: [string, string, RegExp][] = [
      ['CR', `${VALUE_SECRET}\rX-Injected: 1`, /line break \(CR or LF\)/],
      ['LF', `${VALUE_SECRET}\nX-Injected: 1`, /line break \(CR or LF\)/],
      ['CRLF', `${VALUE_SECRET}\r\nX-Injected: 1`, /line break \(CR or LF\)/],
      ['CRLF CRLF (a second request)', `${VALUE_SECRET}\r\n\r\nGET /oauth2/api/items HTTP/1.1\r\nHost: x`, /line break \(CR or LF\)/],
      ['NUL', `${VALUE_SECRET}\u0000tail`, /control character/],
      ['ESC', `${VALUE_SECRET}\u001b[31m`, /control character/],
      ['a character beyond Latin-1', `${VALUE_SECRET}€`, /beyond Latin-1/],
    ];
    for (const [name, value, says] of values) {
      it(`a value with ${name}`, async () => {
        const f = platformFlow(oauth2, sandbox);
        await H.load(ALL_MODULES, f.nodes, f.credentials);
        const headers = { accept: 'application/json', 'X-Trace-Id': value };
        const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ headers }));
        const error = expectError(outcome, 'INPUT_INVALID', name);
        assert.ok(error.message.includes('"X-Trace-Id"'), `names the header: ${error.message}`);
        assert.match(error.message, says);
        assert.equal(sandboxCalls(), 0, 'the sandbox received nothing, not even a token request');
        assertNowhere(VALUE_SECRET, outcome, [value, headers], name);
        assertNoLeaks(oauth2.secrets(sandbox), name);
      });
    }

    const NAME_SECRET = 'hdr-name-secret-91c2';
    const names: [string, string, RegExp][] = [
      ['CR', `X-Evil\r${NAME_SECRET}`, /line break/],
      ['LF', `X-Evil\n${NAME_SECRET}`, /line break/],
      ['CRLF', `X-Evil\r\n${NAME_SECRET}`, /line break/],
      ['NUL', `X-Evil\u0000${NAME_SECRET}`, /control character/],
      ['a colon (a whole header line as the name)', `X-Evil: ${NAME_SECRET}`, /a colon/],
      ['a space', `X-Evil ${NAME_SECRET}`, /a space/],
    ];
    for (const [kind, name, says] of names) {
      it(`a name with ${kind}: named up to its bad character only`, async () => {
        const f = platformFlow(oauth2, sandbox);
        await H.load(ALL_MODULES, f.nodes, f.credentials);
        const headers = { [name]: 'harmless' };
        const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ headers }));
        const error = expectError(outcome, 'INPUT_INVALID', kind);
        assert.ok(error.message.includes('"X-Evil"'), `names the header: ${error.message}`);
        assert.match(error.message, says);
        assert.equal(sandboxCalls(), 0, 'the sandbox received nothing, not even a token request');
        assertNowhere(NAME_SECRET, outcome, [name, headers], kind);
      });
    }

    it('an empty name, an object or a list holding an object as a value, msg.headers that is not an object: INPUT_INVALID, nothing sent', async () => {
      const f = platformFlow(oauth2, sandbox);
      await H.load(ALL_MODULES, f.nodes, f.credentials);
      const cases: [string, unknown, RegExp][] = [
        ['empty name', { '': 'x' }, /empty name/],
        ['object value', { 'X-Meta': { a: 1 } }, /"X-Meta"\] holds an object/],
        ['list with an object', { 'X-Meta': ['a', { b: 2 }] }, /"X-Meta"\] holds an object/],
        ['msg.headers a string', 'accept: application/json', /msg.headers is a string/],
        ['msg.headers a list', [['accept', 'application/json']], /msg.headers is a list/],
      ];
      for (const [kind, headers, says] of cases) {
        const error = expectError(await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ headers })), 'INPUT_INVALID', kind);
        assert.match(error.message, says, kind);
      }
      assert.equal(sandboxCalls(), 0);
    });

    it('get token refuses the same headers before it fetches a token (a core http request node would fail on them after)', async () => {
      const f = platformFlow(oauth2, sandbox);
      await H.load(ALL_MODULES, f.nodes, f.credentials);
      const value = `${VALUE_SECRET}\r\nX-Injected: 1`;
      const headers = { 'X-Trace-Id': value };
      const outcome = await outcomeOf(f.ids, () => H.node(f.ids.token).receive({ headers }));
      const error = expectError(outcome, 'INPUT_INVALID', 'get token');
      assert.ok(error.message.includes('"X-Trace-Id"'), error.message);
      assert.equal(sandboxCalls(), 0, 'no token request');
      assertNowhere(VALUE_SECRET, outcome, [value, headers], 'get token');
    });

    it("the onboard agent node's token action refuses them before it onboards or fetches a token", async () => {
      const { flow, iat } = await loadAgent(sandbox);
      const value = `${VALUE_SECRET}\nX-Injected: 1`;
      const headers = { 'X-Trace-Id': value };
      const outcome = await outcomeOf(flow.ids, () => H.node(flow.ids.agent).receive({ action: 'token', headers }));
      const error = expectError(outcome, 'INPUT_INVALID', 'agent token');
      assert.ok(error.message.includes('"X-Trace-Id"'), error.message);
      assert.equal(sandboxCalls(), 0, 'the IAT was not spent, no token request');
      assertNowhere(VALUE_SECRET, outcome, [value, headers], 'agent token');
      assertNoLeaks([iat], 'agent token');
    });

    it("control: valid headers (Latin-1, a tab, a number, a list) reach the server with the platform's auth", async () => {
      const f = platformFlow(oauth2, sandbox, { request: { url: '' } });
      await H.load(ALL_MODULES, f.nodes, f.credentials);
      const outcome = await outcomeOf(f.ids, () =>
        H.node(f.ids.request).receive({
          url: `${sandbox.url}/__sandbox/echo`,
          headers: { 'X-Trace-Id': 'Grüße\tok', 'X-Count': 3, 'X-List': ['a', 'b'], 'X-Absent': null },
        }),
      );
      assert.equal(outcome.kind, 'output', JSON.stringify(outcome.error));
      const echo = outcome.msg.payload as { headers: Record<string, string>; authenticated: string | null };
      assert.equal(outcome.msg.statusCode, 200);
      assert.equal(echo.authenticated, 'oauth2');
      assert.equal(echo.headers['x-trace-id'], 'Grüße\tok');
      assert.equal(echo.headers['x-count'], '3');
      assert.equal(echo.headers['x-list'], 'a, b');
      assert.equal(echo.headers['x-absent'], undefined);
      assert.equal(sandbox.calls('sandbox.echo'), 1, 'the count the other cases rely on sees a request');
    });
  });

  describe('userinfo in msg.url: INPUT_INVALID, nothing sent, never echoed', () => {
    const PASSWORD = 'url-pass-secret-4d8e';
    const USER = 'url-user-secret-b7c1';
    /** The platform's API URL, absolute, with `userinfo@` before the host. */
    const withUserinfo = (c: PlatformCase, userinfo: string, slashes = '//') => {
      const api = new URL(`${c.baseUrl(sandbox)}${c.apiPath}`);
      return `${api.protocol}${slashes}${userinfo}@${api.host}${api.pathname}`;
    };
    const REFUSED = /user name or password before the host.*remove them from the URL/;
    const forms: [string, (c: PlatformCase) => string, string, RegExp][] = [
      ['user and password', (c) => withUserinfo(c, `${USER}:${PASSWORD}`), PASSWORD, REFUSED],
      ['a user only', (c) => withUserinfo(c, USER), USER, REFUSED],
      ['a password only', (c) => withUserinfo(c, `:${PASSWORD}`), PASSWORD, REFUSED],
      ['percent-encoded userinfo', (c) => withUserinfo(c, `${USER}%40corp:${PASSWORD}%2Fx`), PASSWORD, REFUSED],
      [
        'protocol-relative',
        (c) => `//${USER}:${PASSWORD}@${new URL(c.baseUrl(sandbox)).host}${new URL(`${c.baseUrl(sandbox)}${c.apiPath}`).pathname}`,
        PASSWORD,
        REFUSED,
      ],
      ['backslashes for slashes', (c) => withUserinfo(c, `${USER}:${PASSWORD}`, '\\\\'), PASSWORD, REFUSED],
      ['no slashes (a parser takes it for a path)', (c) => withUserinfo(c, `${USER}:${PASSWORD}`, ''), PASSWORD, REFUSED],
      // The "/" ends the host early: no longer a URL at all, and not quoted either.
      [
        'a password with "/" that breaks the URL',
        (c) => withUserinfo(c, `${USER}:${PASSWORD}/x:y`),
        PASSWORD,
        /not a valid URL.*remove any user name or password/,
      ],
    ];
    for (const c of PLATFORM_CASES) {
      it(`${c.platform}: ${forms.length} forms`, async () => {
        const f = platformFlow(c, sandbox, { request: { url: '' } });
        await H.load(ALL_MODULES, f.nodes, f.credentials);
        const urls = forms.map(([, urlOf]) => urlOf(c)); // each stays on the messages the Catch node passed on before
        for (const [i, [form, , secret, says]] of forms.entries()) {
          const url = urls[i]!;
          const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ url }));
          const error = expectError(outcome, 'INPUT_INVALID', `${form}: ${url}`);
          assert.match(error.message, says, form);
          assert.equal(outcome.msg.responseUrl, undefined, 'no URL reported');
          assertNowhere(secret, outcome, urls, form);
        }
        assert.equal(sandboxCalls(), 0, 'the sandbox received nothing, not even a token request');
        assertNoLeaks(c.secrets(sandbox), c.platform);
      });
    }

    it("the node's own URL with userinfo, or a template filling it in from the message, is refused the same way", async () => {
      const c = oauth2;
      for (const nodeUrl of [withUserinfo(c, `${USER}:${PASSWORD}`), withUserinfo(c, '{{{user}}}:{{{pass}}}')]) {
        const f = platformFlow(c, sandbox, { request: { url: nodeUrl } });
        await H.load(ALL_MODULES, f.nodes, f.credentials);
        const msg: NodeMessage = { user: USER, pass: PASSWORD };
        const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive(msg));
        expectError(outcome, 'INPUT_INVALID', nodeUrl);
        assertNowhere(PASSWORD, outcome, [nodeUrl, PASSWORD], nodeUrl);
        await H.unload();
      }
      assert.equal(sandboxCalls(), 0);
    });

    it('control: the same URL without userinfo, and an "@" in the path or query, reach the platform', async () => {
      const c = oauth2;
      const f = platformFlow(c, sandbox, { request: { url: '' } });
      await H.load(ALL_MODULES, f.nodes, f.credentials);
      const api = `${c.baseUrl(sandbox)}${c.apiPath}`;
      for (const url of [api, `${api}?owner=someone@example.com`, `${sandbox.url}/__sandbox/echo/someone@example.com`]) {
        const outcome = await outcomeOf(f.ids, () => H.node(f.ids.request).receive({ url }));
        assert.equal(outcome.kind, 'output', `${url}: ${JSON.stringify(outcome.error)}`);
        assert.equal(outcome.msg.statusCode, 200, url);
        assert.equal(outcome.msg.responseUrl, url);
      }
      assert.equal(sandbox.calls(c.apiEndpoint), 2);
      assert.equal(sandbox.calls('sandbox.echo'), 1);
    });
  });
});
