import fs from 'node:fs';
import path from 'node:path';

/**
 * Searching stored bytes for secrets, in every form they could be written
 * in: as they are, JSON-escaped (a PEM's line breaks), base64, base64url and
 * hex, and, for a PEM key, each line of its body. The findings name the
 * secret's position and form, never the secret.
 */
export function secretForms(secret: string): [form: string, text: string][] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms: [string, string][] = [
    ['plain', secret],
    ['json', JSON.stringify(secret).slice(1, -1)],
    ['base64', bytes.toString('base64')],
    ['base64url', bytes.toString('base64url')],
    ['hex', bytes.toString('hex')],
    ['HEX', bytes.toString('hex').toUpperCase()],
  ];
  for (const line of secret.split('\n')) if (line.length >= 16 && !line.startsWith('-----')) forms.push(['pem line', line]);
  return forms;
}

/** Which secrets (by index) appear in the bytes, and in which form; empty when none does. */
export function findSecrets(bytes: Buffer | string, secrets: readonly string[]): string[] {
  const haystack = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8');
  const found: string[] = [];
  secrets.forEach((secret, i) => {
    for (const [form, text] of secretForms(secret)) if (haystack.includes(Buffer.from(text, 'utf8'))) found.push(`secret ${i} (${form})`);
  });
  return found;
}

/**
 * Every file under a folder, with its bytes (a Redis data folder: its AOF
 * files; a Node-RED user directory). Links are not followed and node_modules
 * is left out: a test user directory links to this checkout, where `npm
 * start` leaves a .demo/ that links back (a recursive readdir loops there).
 */
export function filesUnder(dir: string): Array<{ file: string; bytes: Buffer }> {
  const files: Array<{ file: string; bytes: Buffer }> = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'node_modules') files.push(...filesUnder(file));
    else if (entry.isFile()) files.push({ file, bytes: fs.readFileSync(file) });
  }
  return files;
}
