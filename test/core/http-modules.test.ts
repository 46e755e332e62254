import assert from 'node:assert/strict';
import { errors as undiciErrors } from 'undici';
import { ErrorCode, IiotAuthError } from '../../src/core/errors.js';
import { toHttpError } from '../../src/core/http/errors.js';
import { header, withoutHeaders } from '../../src/core/http/headers.js';
import { nextHop, type Hop } from '../../src/core/http/redirects.js';
import { retryAfterMs, withRetries } from '../../src/core/http/retry.js';
import type { HttpRequest, HttpResponse } from '../../src/core/http/types.js';

/** Each module of the HTTP layer alone, without a server (test/core/http.test.ts drives them together over loopback). */
const answer = (statusCode: number, headers: Record<string, string | string[]> = {}): HttpResponse => ({
  statusCode,
  headers,
  body: Buffer.alloc(0),
  url: 'http://a.test/x',
});

describe('HTTP layer, module by module', () => {
  describe('headers', () => {
    it('reads the first value of a header, repeated or not', () => {
      assert.equal(header({ 'retry-after': ['5', '7'] }, 'retry-after'), '5');
      assert.equal(header({ location: '/x' }, 'location'), '/x');
      assert.equal(header({}, 'location'), undefined);
    });

    it('drops headers by name, whatever their case; an absent set stays absent', () => {
      assert.deepEqual(withoutHeaders({ Authorization: 'a', Accept: 'b', 'X-Tenant-Id': 'c' }, ['authorization', 'x-tenant-id']), { Accept: 'b' });
      assert.equal(withoutHeaders(undefined, ['authorization']), undefined);
    });
  });

  describe('redirects', () => {
    const options = { maxRedirects: 2, credentialHeaders: ['authorization', 'x-space-auth-key'] };
    const get = (headers?: Record<string, string>): Hop => ({ url: 'http://a.test/x', method: 'GET', headers });
    const req = (extra: Partial<HttpRequest> = {}): HttpRequest => ({ method: 'GET', url: 'http://a.test/x', ...extra });

    it('follows a redirect on the same origin with everything, and to another origin without the credential headers', () => {
      const headers = { authorization: 'Bearer t', 'X-Space-Auth-Key': 'k', accept: 'text/plain' };
      assert.deepEqual(nextHop(req(), get(headers), answer(302, { location: '/y' }), 0, options)?.headers, headers);
      const away = nextHop(req(), get(headers), answer(302, { location: 'http://user:pw@b.test/z' }), 0, options);
      assert.equal(away?.url, 'http://b.test/z', 'userinfo in a Location is neither sent nor reported');
      assert.deepEqual(away?.headers, { accept: 'text/plain' });
    });

    it('turns 303, and 301/302 after a POST, into a GET without body; keeps the method and body for 307/308 on the same origin', () => {
      const post: Hop = { url: 'http://a.test/x', method: 'POST', body: 'data', headers: { 'content-type': 'text/plain', 'content-length': '4' } };
      for (const status of [301, 302, 303]) {
        const next = nextHop(req({ method: 'POST' }), post, answer(status, { location: '/r' }), 0, options);
        assert.deepEqual([next?.method, next?.body, next?.headers], ['GET', undefined, {}], String(status));
      }
      for (const status of [307, 308]) assert.deepEqual(nextHop(req({ method: 'POST' }), post, answer(status, { location: '/r' }), 0, options)?.body, 'data');
    });

    it('a body is never re-sent to another origin, and the answer stands without a Location, a valid one, or when following is off', () => {
      const put: Hop = { url: 'http://a.test/x', method: 'PUT', body: 'secret payload' };
      assert.equal(nextHop(req({ method: 'PUT' }), put, answer(307, { location: 'http://b.test/' }), 0, options), undefined);
      assert.equal(nextHop(req(), get(), answer(302), 0, options), undefined);
      assert.equal(nextHop(req(), get(), answer(302, { location: 'http://[bad' }), 0, options), undefined);
      assert.equal(nextHop(req({ followRedirects: false }), get(), answer(302, { location: '/y' }), 0, options), undefined);
      assert.equal(nextHop(req(), get(), answer(304, { location: '/y' }), 0, options), undefined);
    });

    it('refuses any 3xx for a request that carries a secret, and more hops than allowed', () => {
      const secret = req({ method: 'POST', carriesSecret: { what: 'the token endpoint' } });
      assert.throws(() => nextHop(secret, get(), answer(304), 0, options), { code: ErrorCode.TOKEN_ENDPOINT_ERROR, statusCode: 304 });
      assert.throws(() => nextHop(req(), get(), answer(302, { location: '/y' }), 2, options), { code: ErrorCode.HTTP_TOO_MANY_REDIRECTS });
    });
  });

  describe('retry', () => {
    it("reads Retry-After as seconds or an HTTP date, then the platform's reset headers", () => {
      const now = Date.parse('2026-01-01T00:00:00Z');
      assert.equal(retryAfterMs({ 'retry-after': '7' }, now), 7000);
      assert.equal(retryAfterMs({ 'retry-after': ['2', '9'] }, now), 2000);
      assert.equal(retryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, now), 30_000);
      assert.equal(retryAfterMs({ 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' }, now), 0, 'a date in the past: at once');
      assert.equal(retryAfterMs({ 'retry-after': 'soon', 'archivist-rate-limit-reset': '1.5' }, now, ['Archivist-Rate-Limit-Reset']), 1500);
      assert.equal(retryAfterMs({ 'archivist-rate-limit-reset': 'x' }, now, ['archivist-rate-limit-reset']), undefined);
    });

    function counting(statuses: number[], headers: Record<string, string> = { 'retry-after': '0' }) {
      let calls = 0;
      return {
        send: async () => answer(statuses[Math.min(calls++, statuses.length - 1)]!, headers),
        get calls() {
          return calls;
        },
      };
    }

    it('repeats a 429/503 for a method safe to repeat, within the policy; never a POST', async () => {
      const safe = counting([429, 503, 200]);
      assert.equal((await withRetries({ method: 'get', url: 'http://a.test/' }, safe.send)).statusCode, 200);
      assert.equal(safe.calls, 3);
      const bounded = counting([429]);
      assert.equal((await withRetries({ method: 'GET', url: 'http://a.test/', retry: { maxRetries: 2, maxWaitMs: 1000 } }, bounded.send)).statusCode, 429);
      assert.equal(bounded.calls, 3);
      const post = counting([429, 200]);
      assert.equal((await withRetries({ method: 'POST', url: 'http://a.test/' }, post.send)).statusCode, 429);
      assert.equal(post.calls, 1);
      const off = counting([503, 200]);
      assert.equal((await withRetries({ method: 'GET', url: 'http://a.test/', retry: false }, off.send)).statusCode, 503);
    });

    it("passes on a wait longer than allowed, and a wait the caller's deadline cannot cover is HTTP_TIMEOUT", async () => {
      const long = counting([503, 200], { 'retry-after': '3600' });
      assert.equal((await withRetries({ method: 'GET', url: 'http://a.test/' }, long.send)).statusCode, 503);
      assert.equal(long.calls, 1);
      const signal = AbortSignal.abort();
      await assert.rejects(
        withRetries({ method: 'GET', url: 'http://a.test/x?k=secret', signal }, counting([429, 200], { 'retry-after': '3' }).send),
        (err: IiotAuthError) => {
          assert.equal(err.code, ErrorCode.HTTP_TIMEOUT);
          assert.match(err.message, /asked to wait 3 s \(429\)/);
          assert.ok(!err.message.includes('secret'));
          return true;
        },
      );
    });
  });

  describe('errors', () => {
    const url = new URL('http://a.test/path?token=secret');
    const socket = (code: string) => Object.assign(new Error('socket'), { code });
    it("maps undici's and the socket's errors to our codes, naming the URL without its query", () => {
      const cases: [unknown, string][] = [
        [new undiciErrors.HeadersTimeoutError(), ErrorCode.HTTP_TIMEOUT],
        [new undiciErrors.ConnectTimeoutError(), ErrorCode.HTTP_TIMEOUT],
        [Object.assign(new Error('connect'), { code: 'UND_ERR_CONNECT', cause: socket('ECONNREFUSED') }), ErrorCode.HTTP_CONNECTION_REFUSED],
        [socket('ENOTFOUND'), ErrorCode.HTTP_HOST_NOT_FOUND],
        [socket('EAI_AGAIN'), ErrorCode.HTTP_HOST_NOT_FOUND],
        [socket('DEPTH_ZERO_SELF_SIGNED_CERT'), ErrorCode.HTTP_TLS_ERROR],
        [socket('ERR_TLS_CERT_ALTNAME_INVALID'), ErrorCode.HTTP_TLS_ERROR],
        [socket('ECONNRESET'), ErrorCode.HTTP_CONNECTION_RESET],
        [socket('UND_ERR_SOCKET'), ErrorCode.HTTP_CONNECTION_RESET],
        [socket('EWHATEVER'), ErrorCode.HTTP_FAILED],
      ];
      for (const [err, code] of cases) {
        const mapped = toHttpError(err, url, 250);
        assert.equal(mapped.code, code, String((err as { code?: string }).code ?? err));
        assert.ok(mapped.message.includes('http://a.test/path') && !mapped.message.includes('secret'), mapped.message);
      }
      assert.match(toHttpError(new undiciErrors.BodyTimeoutError(), url, 250).message, /within 250 ms/);
      const ours = new IiotAuthError(ErrorCode.CLOSED, 'closed');
      assert.equal(toHttpError(ours, url, 250), ours, 'our own errors pass unchanged');
    });
  });
});
