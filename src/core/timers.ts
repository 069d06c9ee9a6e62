/** Timers behind an interface, so scheduling logic runs on an injected clock in tests. */

export interface Timers {
  /** Call `fn` once, `ms` from now; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** setTimeout takes at most 2^31 - 1 ms (~24.8 days); longer waits are chained. */
const LONGEST_TIMEOUT_MS = 2 ** 31 - 1;

/** Real timers. They never keep the process alive by themselves (the server does that). */
export const systemTimers: Timers = {
  after(ms, fn) {
    const due = Date.now() + Math.max(0, ms);
    let handle: NodeJS.Timeout;
    const arm = (): void => {
      const left = due - Date.now();
      handle = left > LONGEST_TIMEOUT_MS ? setTimeout(arm, LONGEST_TIMEOUT_MS) : setTimeout(fn, Math.max(0, left));
      handle.unref();
    };
    arm();
    return () => clearTimeout(handle);
  },
};
