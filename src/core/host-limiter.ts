/**
 * At most `limit` tasks in flight per host, the rest queued in the order they
 * came: a runtime with a thousand credentials does not send a thousand token
 * requests to one platform at once. One limiter is shared by every config
 * node of a runtime.
 */
export class HostLimiter {
  private readonly hosts = new Map<string, { running: number; queue: Array<() => void> }>();

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('the limit must be a positive integer');
  }

  async run<T>(host: string, task: () => Promise<T>): Promise<T> {
    let state = this.hosts.get(host);
    if (!state) {
      state = { running: 0, queue: [] };
      this.hosts.set(host, state);
    }
    if (state.running >= this.limit) {
      const queued = state;
      await new Promise<void>((resolve) => queued.queue.push(resolve));
      // The slot was handed over by the task that finished: running already counts this one.
    } else {
      state.running++;
    }
    try {
      return await task();
    } finally {
      const next = state.queue.shift();
      if (next) next();
      else if (--state.running === 0) this.hosts.delete(host);
    }
  }

  /** Tasks running and waiting for a host (for tests and diagnostics). */
  load(host: string): { running: number; queued: number } {
    const state = this.hosts.get(host);
    return { running: state?.running ?? 0, queued: state?.queue.length ?? 0 };
  }
}
