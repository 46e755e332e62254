import assert from 'node:assert/strict';
import { ErrorCode, IiotAuthError } from '../../src/core/errors.js';
import type { Token } from '../../src/core/token.js';
import { TokenEngine, type Credential } from '../../src/core/token-engine.js';

/** A clock the test moves by hand. */
class FakeClock {
  time = 1_000_000;
  now = () => this.time;
  advance(ms: number) {
    this.time += ms;
  }
}

function tokenAt(clock: FakeClock, lifetimeMs: number, value = `t${clock.time}`): Token {
  return { type: 'bearer', value, obtainedAt: clock.time, expiresAt: clock.time + lifetimeMs, headers: { authorization: `Bearer ${value}` } };
}

/** A fetcher that counts calls and resolves when the test says so. */
function controllableFetcher(clock: FakeClock, lifetimeMs: number) {
  let calls = 0;
  const pending: Array<{ resolve: (t: Token) => void; reject: (e: Error) => void }> = [];
  const fetch = () =>
    new Promise<Token>((resolve, reject) => {
      calls += 1;
      pending.push({ resolve, reject });
    });
  return {
    fetch,
    get calls() {
      return calls;
    },
    resolveNext(value?: string) {
      pending.shift()!.resolve(tokenAt(clock, lifetimeMs, value));
    },
    rejectNext(err: Error) {
      pending.shift()!.reject(err);
    },
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('TokenEngine', () => {
  let clock: FakeClock;
  let engine: TokenEngine;
  /** The credential most cases use: id 'a', fingerprint 'fp'. */
  let a: Credential;
  beforeEach(() => {
    clock = new FakeClock();
    engine = new TokenEngine({ now: clock.now, random: () => 0.5, backoffInitialMs: 1000, backoffMaxMs: 8000 });
    a = engine.credential('a', 'fp');
  });

  it('shares one fetch between concurrent callers (single flight)', async () => {
    const f = controllableFetcher(clock, 60_000);
    const all = Array.from({ length: 1000 }, () => a.get(f.fetch));
    await tick();
    assert.equal(f.calls, 1);
    f.resolveNext('one');
    const tokens = await Promise.all(all);
    assert.ok(tokens.every((t) => t.value === 'one'));
    assert.equal((await a.get(f.fetch)).value, 'one');
    assert.equal(f.calls, 1);
  });

  it('keeps credentials with different ids or fingerprints apart', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 60_000, `v${++n}`);
    const first = await engine.credential('a', 'fp1').get(fetch);
    const other = await engine.credential('b', 'fp1').get(fetch);
    assert.notEqual(first.value, other.value);
    // Same id, changed credential: the old token must not be handed out.
    const changed = await engine.credential('a', 'fp2').get(fetch);
    assert.notEqual(changed.value, first.value);
  });

  it('renews in the background when 15 to 25 % of the lifetime is left, without making callers wait', async () => {
    const f = controllableFetcher(clock, 100_000);
    const first = a.get(f.fetch);
    f.resolveNext('old');
    await first;
    clock.advance(70_000); // 30 % left: no renewal yet (random 0.5 → margin 20 %)
    assert.equal((await a.get(f.fetch)).value, 'old');
    assert.equal(f.calls, 1);
    clock.advance(11_000); // 19 % left: renewal starts, the old token is still handed out
    assert.equal((await a.get(f.fetch)).value, 'old');
    assert.equal(f.calls, 2);
    assert.equal(a.state.state, 'renewing');
    assert.equal((await a.get(f.fetch)).value, 'old');
    assert.equal(f.calls, 2, 'one renewal at a time');
    f.resolveNext('new');
    await tick();
    assert.equal((await a.get(f.fetch)).value, 'new');
  });

  it('spreads renewal over the margin with jitter', async () => {
    const renewAts = [0, 0.999].map((r) => {
      const credential = new TokenEngine({ now: clock.now, random: () => r }).credential('a', 'fp');
      return credential.get(async () => tokenAt(clock, 100_000)).then(() => credential.state.renewAt! - clock.time);
    });
    const [late, early] = await Promise.all(renewAts);
    assert.equal(late, 85_000);
    assert.ok(early! > 74_000 && early! < 76_000, `renewAt ${early}`);
  });

  it('does not hand out a token in its last moments: callers wait for a new one', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 100_000, `v${++n}`);
    await a.get(fetch);
    clock.advance(96_000); // inside the last 5 %
    assert.equal((await a.get(fetch)).value, 'v2');
  });

  it('drops a refused token and fetches a new one, but keeps a newer token', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 60_000, `v${++n}`);
    const first = await a.get(fetch);
    assert.equal(a.rejected(first.value), true);
    const second = await a.get(fetch);
    assert.equal(second.value, 'v2');
    assert.equal(a.rejected(first.value), true, 'a late 401 for the old token: retry with the current one');
    assert.equal((await a.get(fetch)).value, 'v2');
  });

  it('records no failure for a fetch that failed because its client was closed (a redeploy)', async () => {
    let calls = 0;
    const closed = async (): Promise<Token> => {
      calls += 1;
      throw new IiotAuthError(ErrorCode.CLOSED, 'the connection was closed');
    };
    await assert.rejects(a.get(closed), { code: ErrorCode.CLOSED });
    const state = a.state;
    assert.equal(state.state, 'empty', 'no back-off: the credential did not fail');
    assert.equal(state.failures, 0);
    assert.equal(state.lastErrorCode, undefined);
    // The next caller (the new config node) fetches at once.
    const token = await a.get(async () => tokenAt(clock, 60_000, 'fresh'));
    assert.equal(token.value, 'fresh');
    assert.equal(calls, 1);
  });

  it('backs off exponentially after failures, with a cap, and recovers', async () => {
    let calls = 0;
    let failing = true;
    const fetch = async () => {
      calls += 1;
      if (failing) throw new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, 'down', { statusCode: 500 });
      return tokenAt(clock, 60_000, 'ok');
    };
    await assert.rejects(a.get(fetch), { code: ErrorCode.TOKEN_ENDPOINT_ERROR, message: 'down' });
    // During the pause, callers fail at once with the same code and no request is sent.
    await assert.rejects(a.get(fetch), (err: IiotAuthError) => {
      assert.equal(err.code, ErrorCode.TOKEN_ENDPOINT_ERROR);
      assert.match(err.message, /next token request in 1 s/);
      return true;
    });
    assert.equal(calls, 1);
    assert.equal(a.state.state, 'backoff');
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      const retryAt = a.state.retryAt!;
      waits.push(retryAt - clock.time);
      clock.time = retryAt;
      await assert.rejects(a.get(fetch));
    }
    assert.deepEqual(waits, [1000, 2000, 4000, 8000, 8000, 8000]);
    failing = false;
    clock.time = a.state.retryAt!;
    assert.equal((await a.get(fetch)).value, 'ok');
    assert.equal(a.state.failures, 0);
  });

  it('waits at least as long as the server asked (Retry-After), within the cap', async () => {
    const fetch = async (): Promise<Token> => {
      throw new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, 'busy', { statusCode: 429, retryAfterMs: 5000 });
    };
    await assert.rejects(a.get(fetch));
    assert.equal(a.state.retryAt! - clock.time, 5000);
  });

  it('keeps handing out a valid token while a background renewal fails', async () => {
    let n = 0;
    let failing = false;
    const fetch = async () => {
      if (failing) throw new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, 'down');
      return tokenAt(clock, 100_000, `v${++n}`);
    };
    await a.get(fetch);
    failing = true;
    clock.advance(85_000);
    assert.equal((await a.get(fetch)).value, 'v1');
    await tick();
    assert.equal((await a.get(fetch)).value, 'v1');
    assert.equal(a.state.failures, 1);
  });

  it('keeps a token across credential() with the same fingerprint (a redeploy), drops it on a change or drop()', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 60_000, `v${++n}`);
    const token = await a.get(fetch);
    const redeployed = engine.credential('a', 'fp');
    assert.equal(redeployed.peek()?.value, token.value);
    assert.equal(redeployed.state.state, 'valid');
    const changed = engine.credential('a', 'fp-changed');
    assert.equal(a.peek(), undefined);
    assert.equal(redeployed.peek(), undefined);
    assert.equal(changed.state.state, 'empty');
    assert.equal(changed.state.expiresAt, undefined, 'nothing of the old token is left');
    const b = engine.credential('b', 'fp');
    await b.get(fetch);
    assert.equal(b.state.state, 'valid');
    b.drop();
    assert.equal(b.state.state, 'empty');
    assert.equal(b.peek(), undefined);
    assert.equal((await b.get(fetch)).value, 'v3', 'a dropped credential fetches anew');
  });

  it('drop() forgets the back-off too, and a stale handle cannot drop its successor', async () => {
    const down = async (): Promise<Token> => {
      throw new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, 'down', { statusCode: 500 });
    };
    await assert.rejects(a.get(down));
    assert.equal(a.state.state, 'backoff');
    assert.equal(a.state.lastErrorCode, ErrorCode.TOKEN_ENDPOINT_ERROR);
    a.drop();
    assert.deepEqual({ ...a.state }, { state: 'empty', failures: 0 });
    const current = engine.credential('a', 'fp-new');
    await current.get(async () => tokenAt(clock, 60_000, 'new'));
    a.drop(); // the handle of the old fingerprint
    assert.equal(current.peek()?.value, 'new');
  });

  it('does not store a token fetched for a credential that changed meanwhile', async () => {
    const f = controllableFetcher(clock, 60_000);
    const stale = engine.credential('a', 'fp-old');
    const old = stale.get(f.fetch);
    const current = engine.credential('a', 'fp-new');
    f.resolveNext('stale');
    await old;
    assert.equal(stale.peek(), undefined);
    assert.equal(current.peek(), undefined);
    assert.equal(current.state.state, 'empty');
  });

  it('a 401 right after a fresh token: one re-login, then the back-off applies to re-logins too', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 600_000, `v${++n}`);
    let token = await a.get(fetch);
    assert.equal(a.rejected(token.value), true, 'the first 401 re-logs in');
    token = await a.get(fetch);
    assert.equal(n, 2);
    // The fresh token is refused too: the 401 stands, no re-login for the next second (jitter 100 %).
    for (let i = 0; i < 50; i++) assert.equal(a.rejected(token.value), false);
    assert.equal((await a.get(fetch)).value, token.value, 'the token is kept meanwhile');
    assert.equal(n, 2);
    clock.advance(1000);
    assert.equal(a.rejected(token.value), true, 'after the back-off, one more re-login');
    token = await a.get(fetch);
    clock.advance(1999);
    assert.equal(a.rejected(token.value), false, 'the back-off doubles');
    clock.advance(1);
    assert.equal(a.rejected(token.value), true);
    assert.equal(a.rejected('an-older-token'), true, 'a 401 to a token already replaced retries with the current one');
  });

  it('a re-login whose token the API accepted resets the 401 back-off: the next 401 re-logs in at once', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 600_000, `v${++n}`);
    let token = await a.get(fetch);
    for (let end = 1; end <= 5; end++) {
      // The session ends (a sweep, a logout elsewhere): a 401, one re-login, and the retry is accepted.
      assert.equal(a.rejected(token.value), true, `session end ${end}: re-login`);
      token = await a.get(fetch);
      a.accepted(token.value);
      clock.advance(10); // far inside the back-off of 1 s
    }
    assert.equal(n, 6, 'one login, then one re-login per session end');
    // A fresh token refused again still backs off.
    assert.equal(a.rejected(token.value), true);
    token = await a.get(fetch);
    assert.equal(a.rejected(token.value), false, 'refused right after a re-login: the 401 stands');
    a.accepted('an-older-token');
    assert.equal(a.rejected(token.value), false, 'a token that is no longer current resets nothing');
  });

  it('a 401 after a long quiet spell re-logs in at once', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 600_000, `v${++n}`);
    for (let i = 0; i < 4; i++) {
      const token = await a.get(fetch);
      assert.equal(a.rejected(token.value), true);
      clock.advance(16_001); // more than twice the maximum back-off
    }
    assert.equal(n, 4);
  });

  it('sanitises lifetimes: tiny ones last 2 s, huge ones 7 days; every expiry is a valid date', async () => {
    const cases: [number, number][] = [
      [0, 2000],
      [-5000, 2000],
      [1, 2000],
      [NaN, 2000],
      [1e13, 7 * 24 * 3600 * 1000],
      [1e300, 7 * 24 * 3600 * 1000],
      [Infinity, 7 * 24 * 3600 * 1000],
    ];
    for (const [lifetime, expected] of cases) {
      const credential = engine.credential(`l${lifetime}`, 'fp');
      const token = await credential.get(async () => tokenAt(clock, lifetime));
      assert.equal(token.expiresAt - clock.time, expected, String(lifetime));
      assert.ok(!Number.isNaN(new Date(token.expiresAt).getTime()));
      assert.equal(credential.state.expiresAt, token.expiresAt);
    }
  });

  it('a tiny lifetime costs at most one token request per 1.5 s, whatever the message rate', async () => {
    let n = 0;
    const fetch = async () => tokenAt(clock, 1, `v${++n}`);
    for (let ms = 0; ms < 10_000; ms += 10) {
      await a.get(fetch).catch(() => undefined);
      clock.advance(10);
    }
    await tick();
    assert.ok(n <= 8, `token requests in 10 s: ${n}`);
  });

  it('renew(): a new token now, past the cache and the back-off, joining the fetch in flight (a second press never sends a second request)', async () => {
    const f = controllableFetcher(clock, 60_000);
    const first = a.get(f.fetch);
    await tick();
    const presses = [a.renew(f.fetch), a.renew(f.fetch)];
    await tick();
    assert.equal(f.calls, 1, 'joined the fetch in flight');
    f.resolveNext('one');
    assert.deepEqual(
      (await Promise.all([first, ...presses])).map((t) => t.value),
      ['one', 'one', 'one'],
    );
    const renewed = a.renew(f.fetch);
    await tick();
    assert.equal(f.calls, 2, 'a valid cached token does not stop a renew');
    f.rejectNext(new IiotAuthError(ErrorCode.TOKEN_ENDPOINT_ERROR, 'down'));
    await assert.rejects(renewed, { code: ErrorCode.TOKEN_ENDPOINT_ERROR });
    assert.equal(a.state.state, 'valid', 'the token held still works');
    const again = a.renew(f.fetch);
    await tick();
    assert.equal(f.calls, 3, 'nor does the back-off');
    f.resolveNext('two');
    assert.equal((await again).value, 'two');
  });

  it('tells its observer of each token request (renewal or not), its outcome, a re-login and a drop; a throwing observer breaks nothing', async () => {
    const told: string[] = [];
    engine = new TokenEngine({
      now: clock.now,
      random: () => 0.5,
      observer: (id, event) => {
        told.push(`${id}:${event.kind}${event.kind === 'fetch-started' ? `(${event.renewal ? 'renewal' : 'first'})` : ''}`);
        throw new Error('an observer failing');
      },
    });
    const b = engine.credential('b', 'fp');
    const f = controllableFetcher(clock, 60_000);
    const got = b.get(f.fetch);
    await tick();
    f.resolveNext('one');
    assert.equal((await got).value, 'one');
    clock.advance(50_000); // past the renewal point
    await b.get(f.fetch);
    await tick();
    f.rejectNext(new IiotAuthError(ErrorCode.HTTP_TIMEOUT, 'slow'));
    await tick();
    assert.equal(b.rejected('one'), true);
    b.drop();
    assert.deepEqual(told, ['b:fetch-started(first)', 'b:fetch-succeeded', 'b:fetch-started(renewal)', 'b:fetch-failed', 'b:relogin', 'b:dropped']);
  });
});
