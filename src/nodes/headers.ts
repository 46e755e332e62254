import { ErrorCode, IiotAuthError } from '../core/errors.js';
import { withoutHeaders } from '../core/http/index.js';

/** Header helpers for messages, whose `headers` may be anything a flow put there. */

/**
 * What HTTP allows (RFC 9110 5.1, 5.5), as undici and Node.js check it: a
 * name is a token; a value holds tab, visible ASCII, space and Latin-1 only.
 * Anything else (CR or LF above all: a second header or a second request
 * smuggled in) undici would refuse only once the token is fetched, as an
 * error that blames the server.
 */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
const LINE_BREAK = /[\r\n]/;
const CONTROL_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * msg.headers as header names and string values: absent values (undefined,
 * null) left out, numbers and booleans as text, a list joined with ", ".
 * Anything HTTP could not carry is INPUT_INVALID naming the header, never its
 * value, before anything is sent: a name that is not a token, a value with a
 * line break or another control character, an object.
 */
export function headersOf(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) {
    throw new IiotAuthError(
      ErrorCode.INPUT_INVALID,
      `msg.headers is ${kindOf(value)}: it must be an object of header names and values, like {"accept": "application/json"}, or absent`,
    );
  }
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    if (!HEADER_NAME.test(name)) throw badName(name);
    if (v === undefined || v === null) continue;
    const text = Array.isArray(v) ? v.map((item) => valueText(name, item)).join(', ') : valueText(name, v);
    const bad = BAD_VALUE_CHAR.exec(text);
    if (bad) {
      throw new IiotAuthError(
        ErrorCode.INPUT_INVALID,
        `msg.headers[${nameForMessage(name)}] holds ${whatIsWrong(bad[0])}, which an HTTP header cannot carry: remove it from the value (encode binary or non-Latin text, e.g. as Base64 or percent-encoding)`,
      );
    }
    out[name] = text;
  }
  return out;
}

/** One header value (or one item of a list) as text; an object or a function is refused, naming the header. */
function valueText(name: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  throw new IiotAuthError(
    ErrorCode.INPUT_INVALID,
    `msg.headers[${nameForMessage(name)}] holds ${kindOf(value)}: a header value must be text, a number, or a list of those; convert it (JSON.stringify, say) in the flow before this node`,
  );
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (Buffer.isBuffer(value)) return 'a Buffer';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** The name for a message: JSON-quoted (a control character shows as \r, \n, \u0000), long names cut. */
function nameForMessage(name: string): string {
  return JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);
}

/**
 * A name that is not a token, named up to its first bad character only: what
 * follows may be a value put in the name by mistake ("X-Api-Key: secret").
 */
function badName(name: string): IiotAuthError {
  if (name === '') {
    return new IiotAuthError(ErrorCode.INPUT_INVALID, 'msg.headers has a header with an empty name: remove it, or give it a name');
  }
  const chars = [...name];
  const at = chars.findIndex((char) => !HEADER_NAME.test(char));
  const char = chars[at];
  const start = chars.slice(0, at).join('');
  const what = char === ':' ? 'a colon' : char === ' ' ? 'a space' : BAD_VALUE_CHAR.test(char) ? whatIsWrong(char) : 'a character not allowed in header names';
  return new IiotAuthError(
    ErrorCode.INPUT_INVALID,
    `msg.headers has a header named ${start ? `${nameForMessage(start)}…` : '…'} that holds ${what} at position ${at + 1}: a header name may hold letters, digits and ${"!#$%&'*+-.^_`|~"} only; put the name alone in the key and the value in its value`,
  );
}

function whatIsWrong(char: string): string {
  if (LINE_BREAK.test(char)) return 'a line break (CR or LF)';
  if (CONTROL_CHAR.test(char)) return 'a control character (NUL, ESC, DEL, …)';
  return 'a character beyond Latin-1 (U+0100 or above)';
}

/** `base` with `overrides` applied, matching names case-insensitively (so `Authorization` is replaced, not doubled). */
export function mergeHeaders(base: Record<string, string>, overrides: Record<string, string>): Record<string, string> {
  return { ...withoutHeaders(base, Object.keys(overrides)), ...overrides };
}
