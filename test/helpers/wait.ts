/**
 * Waiting for an event rather than for a guessed time. Every test that must
 * wait for something it cannot await directly polls a predicate with this;
 * a test that sleeps either waits too long on a fast machine or too short
 * on a loaded one.
 */

export interface WaitOptions {
  /** What is awaited, for the message on timeout; a function is read then, so it can show the state reached. */
  what: string | (() => string);
  /** The deadline; generous, as it costs nothing when the event comes. Default 10 s. */
  timeoutMs?: number;
  /** How often the predicate is asked. Default 10 ms. */
  intervalMs?: number;
}

/**
 * Resolves with the predicate's first truthy value; rejects with a message
 * naming `what` once `timeoutMs` passed without one. An exception in the
 * predicate ends the wait at once (it is a failure, not a "not yet").
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, options: WaitOptions): Promise<NonNullable<T>> {
  const { timeoutMs = 10_000, intervalMs = 10 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value as NonNullable<T>;
    if (Date.now() >= deadline) {
      const what = typeof options.what === 'function' ? options.what() : options.what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Lets Node-RED deliver what is already on its way: it hands each sent
 * message to its receiver in a setImmediate, and a Catch node passes an
 * error on the same way. Two turns of that queue deliver everything a node
 * sent before it said done (one hop, or two through a Catch node).
 */
export async function deliveries(): Promise<void> {
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
}
