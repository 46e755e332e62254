/**
 * Last line of defence: replaces every known secret in a text with "***".
 * Messages are built without secrets in the first place; this catches what a
 * server echoes back (an error body quoting the request, say).
 */
const MIN_SECRET_LENGTH = 4;

export class Redactor {
  private readonly secrets = new Set<string>();

  /**
   * Registers secrets and, for each, its URL-encoded forms: as in a URL
   * (encodeURIComponent) and as in a form body (spaces as "+", !'()* escaped),
   * the way token requests send them. HTTP Basic's base64 form: addBasic().
   */
  add(...values: Array<string | undefined | null>): this {
    for (const value of values) {
      if (!value || value.length < MIN_SECRET_LENGTH) continue;
      this.secrets.add(value);
      this.secrets.add(encodeURIComponent(value));
      this.secrets.add(new URLSearchParams({ v: value }).toString().slice(2));
    }
    return this;
  }

  /** Registers `id:secret` in the base64 form of HTTP Basic authentication. */
  addBasic(id: string, secret: string): this {
    if (secret) this.secrets.add(Buffer.from(`${id}:${secret}`).toString('base64'));
    return this;
  }

  redact(text: string): string {
    let out = text;
    // Longest first, so that a secret containing another is replaced whole.
    for (const secret of [...this.secrets].sort((a, b) => b.length - a.length)) {
      if (out.includes(secret)) out = out.split(secret).join('***');
    }
    return out;
  }
}
