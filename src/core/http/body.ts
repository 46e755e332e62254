import { errors as undiciErrors, type Dispatcher } from 'undici';
import { responseTooLarge } from './errors.js';

/** The response body in one Buffer, within the size limit and the deadline; events, not an async iterator. */
export function readLimited(
  body: Dispatcher.ResponseData['body'],
  maxBytes: number,
  contentLength: string | string[] | undefined,
  url: URL,
  deadline: number,
): Promise<Buffer> {
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  return new Promise((resolve, reject) => {
    // Destroying an unread undici body emits an 'error'; we already know why, so it must not go unhandled.
    let failed: Error | undefined;
    const fail = (err: Error) => {
      if (failed) return;
      failed = err;
      body.destroy();
      reject(err);
    };
    body.on('error', (err: Error) => fail(err));
    if (Number.isFinite(declared) && declared > maxBytes) return fail(responseTooLarge(url, maxBytes));
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) return fail(responseTooLarge(url, maxBytes));
      if (Date.now() > deadline) return fail(new undiciErrors.BodyTimeoutError());
      if (!first) first = chunk;
      else {
        chunks ??= [first];
        chunks.push(chunk);
      }
    });
    body.on('end', () => {
      if (failed) return;
      resolve(chunks ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)));
    });
  });
}
