import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/core/errors.js';
import { checkBaseUrl, resolveApiUrl } from '../../src/core/url.js';

describe('resolveApiUrl', () => {
  it('appends a relative URL to the base path, which RFC 3986 resolution would drop', () => {
    assert.equal(resolveApiUrl('http://h:8080/mbp', '/api/devices').href, 'http://h:8080/mbp/api/devices');
    assert.equal(resolveApiUrl('http://h:8080/mbp/', 'api/devices?page=2').href, 'http://h:8080/mbp/api/devices?page=2');
    assert.equal(resolveApiUrl('https://gw.example', '/api/x#frag').href, 'https://gw.example/api/x#frag');
  });

  it('accepts an absolute URL on the same origin', () => {
    assert.equal(resolveApiUrl('https://gw.example/base', 'https://gw.example/other').href, 'https://gw.example/other');
  });

  it('refuses an absolute or protocol-relative URL on another origin', () => {
    for (const target of ['https://evil.example/x', '//evil.example/x', 'http://gw.example/x', 'https://gw.example:8443/x']) {
      assert.throws(() => resolveApiUrl('https://gw.example', target), { code: ErrorCode.FOREIGN_ORIGIN }, target);
    }
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
