import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, jwtVerify } from 'jose';
import type { HttpResponse } from '../../src/core/http/index.js';
import { DpopPolicy, DpopProver } from '../../src/platforms/oauth2-dpop.js';
import * as oauth2 from '../../src/platforms/oauth2.js';

/** DPoP proofs, nonces and token answers (RFC 9449), without a network; oidc-provider checks them in test/conformance/oauth2/dpop.test.ts. */
const answer = (statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json', ...headers },
  body: Buffer.from(JSON.stringify(body)),
  url: 'https://as.example/token',
});

describe('DPoP proofs (no network)', () => {
  const claims = async (made: Promise<{ value: string }>) => (await jwtVerify((await made).value, EmbeddedJWK, { typ: 'dpop+jwt' })).payload;

  it('a proof: dpop+jwt with the public key only, htm, htu without query, fragment or userinfo, iat, a new jti each time, ath of the token', async () => {
    const prover = await DpopProver.generate();
    const made = await prover.make('post', 'https://user:pw@api.example/items?x=1#top', 'the-token');
    const { payload, protectedHeader } = await jwtVerify(made.value, EmbeddedJWK, { typ: 'dpop+jwt' });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.deepEqual(Object.keys(protectedHeader.jwk!).sort(), ['crv', 'kty', 'x', 'y'], 'the public key only');
    assert.equal(payload.htm, 'POST');
    assert.equal(payload.htu, 'https://api.example/items');
    assert.equal(payload.ath, createHash('sha256').update('the-token').digest('base64url'));
    assert.ok(Math.abs((payload.iat as number) - Date.now() / 1000) < 5);
    const again = await claims(prover.make('POST', 'https://api.example/items'));
    assert.notEqual(again.jti, payload.jti);
    assert.equal(again.ath, undefined, 'no ath at the token endpoint');
  });

  it("picks the server's algorithm when it lists one this client signs with", async () => {
    assert.equal((await DpopProver.generate(['RS256'])).alg, 'RS256');
    assert.equal((await DpopProver.generate(['EdDSA', 'PS256'])).alg, 'PS256');
    assert.equal((await DpopProver.generate(['EdDSA'])).alg, 'ES256');
  });

  it('a nonce: taken from DPoP-Nonce when it is 1*NQCHAR, per origin; a retry only when the server asks for one the proof lacked', async () => {
    const prover = await DpopProver.generate();
    const url = 'https://as.example/token';
    const asks = (nonce: string) => answer(400, { error: 'use_dpop_nonce' }, { 'dpop-nonce': nonce });
    // Two requests at once, both before the nonce is known: each is retried, not only the first.
    const [a, b] = await Promise.all([prover.make('POST', url), prover.make('POST', url)]);
    assert.equal(a.refusedForNonce(asks('n-1')), true);
    assert.equal(b.refusedForNonce(asks('n-1')), true);
    const withNonce = await prover.make('POST', url);
    assert.equal((await claims(Promise.resolve(withNonce))).nonce, 'n-1');
    assert.equal(withNonce.refusedForNonce(asks('n-1')), false, 'refused with the nonce it carried: no use retrying');
    assert.equal(withNonce.refusedForNonce(answer(200, {}, { 'dpop-nonce': 'n-2' })), false, 'a new nonce on success is kept, nothing retried');
    assert.equal((await claims(prover.make('POST', url))).nonce, 'n-2');
    for (const bad of ['a"b', 'a\\b', 'x'.repeat(1025)]) {
      assert.equal((await prover.make('POST', url)).refusedForNonce(asks(bad)), false, bad.slice(0, 10));
    }
    assert.equal((await claims(prover.make('POST', url))).nonce, 'n-2', 'a bad nonce is not taken');
    const api = 'https://api.example/items';
    const first = await prover.make('GET', api);
    assert.equal((await claims(Promise.resolve(first))).nonce, undefined, "another origin: not the server's nonce");
    const challenge = answer(401, {}, { 'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="nonce"', 'dpop-nonce': 'r-1' });
    assert.equal(first.refusedForNonce(challenge), true);
  });

  it('a stored key restores to the same key, its public part only in the proofs (RSA too); a damaged one is CONFIG_INVALID that says to log in again', async () => {
    const thumb = async (p: DpopProver) => calculateJwkThumbprint(decodeProtectedHeader((await p.make('GET', 'https://a.example/')).value).jwk!);
    for (const algs of [[], ['RS256']]) {
      const prover = await DpopProver.generate(algs);
      const restored = await DpopProver.restore(prover.stored());
      assert.equal(await thumb(restored), await thumb(prover));
      const jwk = decodeProtectedHeader((await restored.make('GET', 'https://a.example/')).value).jwk!;
      assert.deepEqual(Object.keys(jwk).sort(), algs.length ? ['e', 'kty', 'n'] : ['crv', 'kty', 'x', 'y'], 'no private part of the restored key');
    }
    const prover = await DpopProver.generate();
    await assert.rejects(DpopProver.restore({ key: 'not a key', alg: 'ES256' }), { code: 'CONFIG_INVALID', message: /log in again/ });
    await assert.rejects(DpopProver.restore({ ...prover.stored(), alg: 'HS256' }), { code: 'CONFIG_INVALID' });
  });

  it('auto: no proof at first; a refusal that may mean DPoP is tried with a key, kept once it passed; never tries nothing', async () => {
    const offers = { dpopAlgs: ['ES256'] } as never;
    const auto = new DpopPolicy('auto');
    assert.equal(auto.proverFor(offers), undefined);
    assert.equal(auto.trialFor(answer(400, { error: 'invalid_grant' }), undefined), undefined, 'no metadata offering DPoP: a bare invalid_grant is just that');
    assert.equal(auto.trialFor(answer(401, { error: 'invalid_client' }), offers), undefined);
    const trial = await auto.trialFor(answer(400, { error: 'invalid_grant' }), offers);
    assert.ok(trial);
    assert.ok(await auto.trialFor(answer(400, { error: 'invalid_request', error_description: 'DPoP proof is missing' }), undefined));
    auto.confirm();
    assert.equal(await auto.proverFor(undefined), trial, 'the same key from now on');
    const never = new DpopPolicy('never');
    assert.equal(never.trialFor(answer(400, { error: 'invalid_dpop_proof' }), offers), undefined);
    assert.equal(never.proverFor(offers), undefined);
    assert.ok(await new DpopPolicy('always').proverFor(undefined));
  });

  it('token answers: a DPoP token with the proof sent is bound; a bearer token under always, and DPoP errors, are DPOP_REJECTED', async () => {
    const prover = await DpopProver.generate();
    const token = oauth2.readTokenResponse(answer(200, { access_token: 'abc', token_type: 'DPoP', expires_in: 60 }), 0, 'basic', '', 'client credentials', '', {
      prover,
      dpop: 'auto',
    });
    assert.equal(token.type, 'dpop');
    assert.deepEqual(token.headers, { authorization: 'DPoP abc' });
    assert.equal(token.proof!.header, 'dpop');
    const made = await token.proof!.make('GET', new URL('https://api.example/x'));
    assert.equal((await jwtVerify(made.value, EmbeddedJWK)).payload.ath, createHash('sha256').update('abc').digest('base64url'));
    assert.throws(
      () =>
        oauth2.readTokenResponse(answer(200, { access_token: 'abc', token_type: 'Bearer' }), 0, 'basic', '', 'client credentials', '', {
          prover,
          dpop: 'always',
        }),
      { code: 'DPOP_REJECTED', message: /enable DPoP for the client at the server/ },
    );
    for (const error of ['invalid_dpop_proof', 'use_dpop_nonce']) {
      assert.throws(() => oauth2.readTokenResponse(answer(400, { error, error_description: 'bad proof' }), 0), {
        code: 'DPOP_REJECTED',
        message: /bad proof/,
      });
    }
  });
});
