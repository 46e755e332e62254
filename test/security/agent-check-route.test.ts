import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { AGENT_CHECK_ROUTE } from '../../src/nodes/insights-hub-agent-check.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { FlowHarness as H } from '../helpers/flow.js';
import { filesUnder } from '../helpers/secret-search.js';
import { startNodeRed, type NodeRedProcess } from '../editor/node-red.js';
import { adminUsers } from '../helpers/admin-auth.js';
import { ALL_MODULES, assertNoLeaks, securitySuite } from './harness.js';

/**
 * The agent config dialog's check (an admin route): it reads what the user
 * pasted with the runtime's own parsers and answers what the dialog shows, a
 * problem named by the dialog's message key or the agent, profile and IAT
 * expiry. Checked: JSON only (a cross-site form gets 415), every kind of
 * input, and that no secret of the pasted text (IAT, client secret,
 * registration access token, key) comes back or appears in anything the
 * runtime emitted. With adminAuth (a real Node-RED process): write permission
 * only.
 */
const pem = (key: { export(o: object): string | Buffer }, type: string) => key.export({ type, format: 'pem' }).toString();
const rsa3072 = generateKeyPairSync('rsa', { modulusLength: 3072 });
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const KEYS = {
  pkcs1: pem(rsa3072.privateKey, 'pkcs1'),
  pkcs8: pem(rsa3072.privateKey, 'pkcs8'),
  small: pem(rsa2048.privateKey, 'pkcs8'),
  ec: pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'pkcs8'),
  public: pem(rsa3072.publicKey, 'spki'),
  encrypted: rsa3072.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pass-phrase' }).toString(),
};
/** The base64 body of a PEM, one line: what must never come back. */
const keyBody = (text: string) => text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');

function boarding(sandbox: Sandbox, profile: 'SHARED_SECRET' | 'RSA_3072' = 'SHARED_SECRET') {
  const record = sandbox.agents.create({ securityProfile: profile });
  return sandbox.agents.boardingConfiguration(record.id);
}

/** An SDK state file (.mc/<client id>.json) as the SDK saves it after onboarding. */
function sdkStateFile(config: ReturnType<typeof boarding>) {
  const registration = {
    client_id: config.content.clientId,
    client_secret: 'sdk-client-secret-value-4711',
    client_secret_expires_at: Math.floor(Date.now() / 1000) + 3600,
    registration_access_token: 'sdk-registration-access-token-0815',
    registration_client_uri: `${config.content.baseUrl}/api/agentmanagement/v3/register/${config.content.clientId}`,
  };
  return { ...config, expiration: '2020-01-01T00:00:00.000Z', response: registration, recovery: [] };
}

describe('security: the agent configuration check admin route', function () {
  this.timeout(60_000);
  const suite = securitySuite('agent-check');
  let sandbox: Sandbox;
  before(() => {
    ({ sandbox } = suite);
  });
  beforeEach(() => H.load(ALL_MODULES, []));

  /** Every 12 characters of a secret, from every 4th: a prefix or any other piece of it. */
  const pieces = (secret: string) => Array.from({ length: Math.max(1, Math.ceil((secret.length - 11) / 4)) }, (_, i) => secret.slice(i * 4, i * 4 + 12));

  /** Posts to the route and checks the answer (not even a piece) and everything the runtime emitted hold none of the secrets. */
  async function check(body: Record<string, unknown>, secrets: string[]): Promise<Record<string, unknown>> {
    const res = await H.request().post(AGENT_CHECK_ROUTE).send(body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const answer = JSON.stringify(res.body);
    for (const piece of secrets.flatMap(pieces)) assert.ok(!answer.includes(piece), `the answer carries a piece of a secret, "${piece}": ${answer}`);
    assertNoLeaks(secrets, 'the check');
    return res.body as Record<string, unknown>;
  }

  describe('anything but JSON is refused with 415', () => {
    const bodies: [string, string, string][] = [
      ['a cross-site HTML form (form-encoded)', 'application/x-www-form-urlencoded', 'boardingConfig=%7B%7D'],
      ['a form with enctype text/plain', 'text/plain', '{"boardingConfig":"{}","x":"=y"}'],
      ['multipart form data', 'multipart/form-data; boundary=xyz', '--xyz\r\nContent-Disposition: form-data; name="boardingConfig"\r\n\r\n{}\r\n--xyz--\r\n'],
    ];
    for (const [name, type, body] of bodies) {
      it(name, async () => {
        const res = await H.request().post(AGENT_CHECK_ROUTE).set('content-type', type).send(body);
        assert.equal(res.status, 415, JSON.stringify(res.body));
        assert.equal(res.body.code, 'INPUT_INVALID');
        assert.match(res.body.message, /takes JSON only/);
      });
    }
  });

  it('JSON without a text to check: 400, saying what to send', async () => {
    for (const body of [{}, { boardingConfig: 42 }, { privateKey: { pem: 'x' } }]) {
      const res = await H.request().post(AGENT_CHECK_ROUTE).send(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.code, 'INPUT_INVALID');
      assert.match(res.body.message, /send boardingConfig or privateKey/);
    }
  });

  it('a boarding configuration: its agent, tenant, base URL, profile and IAT expiry; never its IAT', async () => {
    const config = boarding(sandbox);
    const answer = await check({ boardingConfig: JSON.stringify(config) }, [config.content.iat]);
    assert.deepEqual(answer, {
      boardingConfig: {
        kind: 'boarding-configuration',
        clientId: config.content.clientId,
        tenant: config.content.tenant,
        baseUrl: config.content.baseUrl,
        profiles: ['SHARED_SECRET'],
        expiresAt: Date.parse(config.expiration),
        warnings: [],
      },
    });
  });

  it('an expired IAT is a warning; without "expiration" the expiry is the IAT\'s exp claim', async () => {
    const config = boarding(sandbox, 'RSA_3072');
    const expired = (await check({ boardingConfig: JSON.stringify({ ...config, expiration: '2020-01-01T00:00:00.000Z' }) }, [config.content.iat]))
      .boardingConfig as Record<string, unknown>;
    assert.deepEqual(expired.warnings, ['expired']);
    assert.equal(expired.expiresAt, Date.parse('2020-01-01T00:00:00.000Z'));
    assert.deepEqual(expired.profiles, ['RSA_3072']);
    const fromIat = (await check({ boardingConfig: JSON.stringify({ content: config.content }) }, [config.content.iat])).boardingConfig as Record<
      string,
      unknown
    >;
    const exp = (JSON.parse(Buffer.from(config.content.iat.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp;
    assert.equal(fromIat.expiresAt, exp * 1000);
    assert.deepEqual(fromIat.warnings, []);
  });

  it('an SDK state file: told apart, its used IAT no concern; no client secret or registration access token comes back', async () => {
    const file = sdkStateFile(boarding(sandbox));
    const answer = (
      await check({ boardingConfig: JSON.stringify(file) }, [file.content.iat, file.response.client_secret, file.response.registration_access_token])
    ).boardingConfig as Record<string, unknown>;
    assert.equal(answer.kind, 'sdk-state-file');
    assert.equal(answer.clientId, file.content.clientId);
    assert.deepEqual(answer.warnings, [], 'its IAT has expired, but adoption never uses it');
  });

  it("what is wrong with a boarding configuration, by the key of the dialog's message", async () => {
    const { content } = boarding(sandbox);
    const { iat: _iat, ...withoutIat } = content;
    const cases: [string, unknown][] = [
      ['', { problem: 'boarding-required' }],
      ['{"content": ', { problem: 'boarding-json' }],
      ['{"expiration": "2030-01-01"}', { problem: 'boarding-content' }],
      [JSON.stringify({ content: withoutIat }), { problem: 'boarding-field', field: 'content.iat' }],
      [JSON.stringify({ content: { ...content, baseUrl: 'ftp://southgate.example' } }), { problem: 'boarding-url' }],
      [JSON.stringify({ content: { ...content, baseUrl: 'https://user:pw@southgate.example' } }), { problem: 'boarding-url' }],
      [JSON.stringify({ content: { ...content, clientId: '../other' } }), { problem: 'boarding-client-id' }],
      [JSON.stringify({ content: { ...content, clientId: '.hidden' } }), { problem: 'boarding-client-id' }],
    ];
    for (const [text, expected] of cases) {
      assert.deepEqual((await check({ boardingConfig: text }, [content.iat])).boardingConfig, expected, text);
    }
  });

  it('a private key: RSA 3072 in PKCS#1 or PKCS#8 is taken; otherwise why not; the key never comes back', async () => {
    const cases: [string, string, unknown][] = [
      ['PKCS#1', KEYS.pkcs1, { kind: 'rsa', bits: 3072 }],
      ['PKCS#8', KEYS.pkcs8, { kind: 'rsa', bits: 3072 }],
      ['empty: one is generated', '  ', { kind: 'generated' }],
      ['RSA 2048', KEYS.small, { problem: 'key-size', bits: 2048 }],
      ['EC', KEYS.ec, { problem: 'key-type' }],
      ['a public key', KEYS.public, { problem: 'key-public' }],
      ['encrypted', KEYS.encrypted, { problem: 'key-encrypted' }],
      ['line breaks lost', KEYS.pkcs8.replace(/\n/g, ' '), { problem: 'key-lines' }],
      ['not a key', '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----', { problem: 'key-format' }],
    ];
    for (const [name, text, expected] of cases) {
      const secrets = text.trim() ? [keyBody(text).slice(0, 40), keyBody(text).slice(-40)] : [];
      assert.deepEqual((await check({ privateKey: text }, secrets)).privateKey, expected, name);
    }
  });

  it('both at once: one answer for each', async () => {
    const config = boarding(sandbox, 'RSA_3072');
    const answer = await check({ boardingConfig: JSON.stringify(config), privateKey: KEYS.small }, [config.content.iat, keyBody(KEYS.small).slice(0, 40)]);
    assert.equal((answer.boardingConfig as { kind: string }).kind, 'boarding-configuration');
    assert.deepEqual(answer.privateKey, { problem: 'key-size', bits: 2048 });
  });
});

describe('security: the agent configuration check with adminAuth (a real Node-RED)', function () {
  this.timeout(60_000);
  let red: NodeRedProcess | undefined;
  const ADMIN_PASSWORD = 'admin-password-for-the-check';
  const VIEWER_PASSWORD = 'viewer-password-for-the-check';
  const users = adminUsers(ADMIN_PASSWORD, VIEWER_PASSWORD);
  const IAT = 'eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.iat-signature-never-echoed';
  const text = JSON.stringify({
    content: { baseUrl: 'https://southgate.example', iat: IAT, clientCredentialProfile: ['SHARED_SECRET'], clientId: 'agent-1', tenant: 't1' },
  });

  before(async () => {
    red = await startNodeRed({
      adminAuth: users.settings,
    });
  });
  after(async () => {
    await red?.stop();
  });

  const login = (who: 'admin' | 'viewer') => users.token(red!.base, who);
  const post = (token: string | undefined) =>
    fetch(`${red!.base}${AGENT_CHECK_ROUTE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ boardingConfig: text }),
    });

  it("without a login, and for a user who may only read: 401 (Node-RED's answer to a missing permission); with write permission: the answer", async () => {
    assert.equal((await post(undefined)).status, 401);
    assert.equal((await post(await login('viewer'))).status, 401);
    const res = await post(await login('admin'));
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { boardingConfig: { kind: string; clientId: string } };
    assert.equal(answer.boardingConfig.kind, 'boarding-configuration');
    assert.equal(answer.boardingConfig.clientId, 'agent-1');
    assert.ok(!JSON.stringify(answer).includes(IAT.split('.')[2]!), 'no IAT in the answer');
    assert.ok(!red!.output().includes('iat-signature-never-echoed'), "nor in the runtime's output");
    // Nothing was kept: the user directory holds no copy of the text.
    const files = filesUnder(red!.userDir);
    assert.ok(files.length > 0, 'the user directory was read');
    for (const { file, bytes } of files) assert.ok(!bytes.includes('iat-signature-never-echoed'), file);
  });
});
