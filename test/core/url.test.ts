import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/core/errors.js';
import { checkBaseUrl, isPlainSegment, resolveApiUrl } from '../../src/core/url.js';

describe('resolveApiUrl', () => {
  it('appends a relative URL to the base path, which RFC 3986 resolution would drop', () => {
    assert.equal(resolveApiUrl('http://h:8080/mbp', '/api/devices').href, 'http://h:8080/mbp/api/devices');
    assert.equal(resolveApiUrl('http://h:8080/mbp/', 'api/devices?page=2').href, 'http://h:8080/mbp/api/devices?page=2');
    assert.equal(resolveApiUrl('https://gw.example', '/api/x#frag').href, 'https://gw.example/api/x#frag');
  });

  it('accepts an absolute URL on the same origin', () => {
    assert.equal(resolveApiUrl('https://gw.example/base', 'https://gw.example/other').href, 'https://gw.example/other');
  });

  it('refuses a relative URL whose dot segments, plain or percent-encoded, climb above the base path', () => {
    const refused = [
      '/../x',
      '..',
      '../x',
      '/a/../../x',
      '/%2e%2e/x',
      '/%2E%2E/x',
      '/.%2e/x',
      '/%252e%252e/x',
      '/..%2fx',
      '/..%2Fx',
      '/..\\x',
      '/a/..%5c..%5cx',
      '%2e%2e',
    ];
    for (const target of refused) {
      assert.throws(() => resolveApiUrl('http://h:8080/mbp', target), { code: ErrorCode.INPUT_INVALID }, target);
    }
    assert.equal(resolveApiUrl('http://h:8080/mbp', '/api/../devices').href, 'http://h:8080/mbp/devices', 'dot segments that stay below the base are fine');
    assert.equal(resolveApiUrl('http://h:8080/mbp', '/api/x?q=../..').href, 'http://h:8080/mbp/api/x?q=../..', 'the query is not a path');
  });

  it('refuses an absolute or protocol-relative URL on another origin', () => {
    for (const target of ['https://evil.example/x', '//evil.example/x', 'http://gw.example/x', 'https://gw.example:8443/x']) {
      assert.throws(() => resolveApiUrl('https://gw.example', target), { code: ErrorCode.FOREIGN_ORIGIN }, target);
    }
  });

  it('refuses userinfo before the host, never quoting it, in every form a URL parser would read as one (issue 19)', () => {
    const forms = [
      'https://alice:s3cret-pw@gw.example/api/x',
      'https://alice@gw.example/api/x',
      'https://:s3cret-pw@gw.example/api/x',
      'https://al%40ice:s3cret%2Fpw@gw.example/api/x',
      '//alice:s3cret-pw@gw.example/api/x',
      'https:\\\\alice:s3cret-pw@gw.example/api/x',
      'https:alice:s3cret-pw@gw.example/api/x',
      'alice:s3cret-pw@gw.example/api/x',
      'HTTPS://ALICE:s3cret-pw@gw.example/api/x',
      'https://alice:s3cret-pw@evil.example/api/x',
    ];
    for (const target of forms) {
      assert.throws(
        () => resolveApiUrl('https://gw.example', target),
        (err: Error & { code?: string }) =>
          err.code === ErrorCode.INPUT_INVALID && /user name or password before the host/.test(err.message) && !/s3cret|alice/i.test(err.message),
        target,
      );
    }
    // A "/" in the password ends the host early: no URL at all, and not quoted either.
    assert.throws(
      () => resolveApiUrl('https://gw.example', 'https://alice:s3cret/pw@gw.example/api/x'),
      (err: Error & { code?: string }) => err.code === ErrorCode.INPUT_INVALID && /not a valid URL/.test(err.message) && !/s3cret|alice/i.test(err.message),
    );
    // "@" after the host is a path or a query, not userinfo.
    assert.equal(resolveApiUrl('https://gw.example', 'https://gw.example/users/a@b.example?owner=c@d').href, 'https://gw.example/users/a@b.example?owner=c@d');
    assert.equal(resolveApiUrl('https://gw.example/base', '/users/alice@corp').href, 'https://gw.example/base/users/alice@corp');
    assert.throws(
      () => resolveApiUrl('https://gw.example', 'https://gw.example:99999/x'),
      /"https:\/\/gw.example:99999\/x" is not a valid URL/,
      'without "@" the URL is quoted',
    );
  });

  it('describes a URL without an origin by its scheme only when it refuses it', () => {
    assert.throws(
      () => resolveApiUrl('https://gw.example', 'javascript:alert(document.cookie)'),
      (err: Error & { code?: string }) => err.code === ErrorCode.FOREIGN_ORIGIN && /to a javascript: URL/.test(err.message) && !/cookie/.test(err.message),
    );
  });
});

describe('checkBaseUrl', () => {
  it('normalises and rejects what is not an http(s) URL', () => {
    assert.equal(checkBaseUrl(' https://gw.example/mbp/ ', 'the URL'), 'https://gw.example/mbp');
    assert.throws(() => checkBaseUrl('gw.example', 'the URL'), { code: ErrorCode.CONFIG_INVALID });
    assert.throws(() => checkBaseUrl('ftp://gw.example', 'the URL'), { code: ErrorCode.CONFIG_INVALID });
    assert.throws(() => checkBaseUrl('https://u:p@gw.example', 'the URL'), /must not contain a user name or password/);
  });
});

describe('isPlainSegment', () => {
  it('accepts ids and refuses dot segments, slashes and encoded forms', () => {
    for (const ok of ['abc', 'a.b', 'A-1_2', '...x']) assert.equal(isPlainSegment(ok), true, ok);
    for (const bad of ['', '.', '..', '...', 'a/b', 'a\\b', '%2f', '%2e', '%2E%2E', '%252e', 'a?b', 'a#b', 'a b'])
      assert.equal(isPlainSegment(bad), false, bad);
  });
});
