import assert from 'node:assert/strict';
import { Redactor } from '../../src/core/redact.js';

describe('Redactor', () => {
  // A secret with characters that each encoding writes differently.
  const secret = "s3cr et!'()*/+=&";

  it('replaces a secret as it is, as in a URL and as in a form body, and its HTTP Basic form', () => {
    const redactor = new Redactor().add(secret).addBasic('client', secret);
    const forms = [
      secret,
      encodeURIComponent(secret),
      new URLSearchParams({ client_secret: secret }).toString().slice('client_secret='.length),
      Buffer.from(`client:${secret}`).toString('base64'),
    ];
    assert.equal(new Set(forms).size, forms.length, 'the four forms differ');
    for (const form of forms) {
      const out = redactor.redact(`the server said: ${form} (end)`);
      assert.equal(out, 'the server said: *** (end)', `form ${JSON.stringify(form)}`);
    }
  });

  it('ignores values too short to be secrets, and replaces a longer secret whole before one inside it', () => {
    const redactor = new Redactor().add('abc', undefined, null, '', 'token-1', 'token-12345');
    assert.equal(redactor.redact('abc token-12345 token-1'), 'abc *** ***');
  });
});
