/**
 * Gentle on the hub (#13): at most a few calls in flight to one hub, and background calls
 * (scheduled renewals, retries nobody waits for) spaced out so that a cold start or the end of an
 * outage, when every workspace is due at once, reaches the hub as a stream rather than a burst.
 * Urgent calls (a client is waiting, nothing servable is held) go first and are not spaced.
 */
import type { Timers } from './timers.js';
import type { Clock } from './types.js';

export type CallPriority = 'urgent' | 'background';

export interface HubLimiterOptions {
  readonly maxInFlight: number;
  readonly clock: Clock;
  readonly timers: Timers;
  /** Least time between the start of any call and the start of a background one; read at each start. */
  readonly spacingMs: () => number;
}

/** Thrown to calls still queued when the limiter closes (the daemon is stopping). */
export class LimiterClosed extends Error {
  constructor() {
    super('the daemon is stopping');
    this.name = 'LimiterClosed';
  }
}

interface Waiter {
  readonly start: () => void;
  readonly cancel: (err: Error) => void;
}

export class HubLimiter {
  private inFlight = 0;
  private lastStart = Number.NEGATIVE_INFINITY;
  private readonly urgent: Waiter[] = [];
  private readonly background: Waiter[] = [];
  private cancelWake: (() => void) | null = null;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: HubLimiterOptions) {}

  /** Run `task` when a slot is free (and, for background work, the spacing has passed). */
  async run<T>(priority: CallPriority, task: () => Promise<T>): Promise<T> {
    if (this.closed) throw new LimiterClosed();
    await new Promise<void>((start, cancel) => {
      (priority === 'urgent' ? this.urgent : this.background).push({ start, cancel });
      this.pump();
    });
    try {
      return await task();
    } finally {
      this.inFlight -= 1;
      this.pump();
      if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Calls running now (not those queued). */
  get running(): number {
    return this.inFlight;
  }

  /** Calls waiting for a slot or for their spacing. */
  get queued(): number {
    return this.urgent.length + this.background.length;
  }

  /** Resolves once no call is running (queued ones may still be waiting for their time). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuse new calls and fail the queued ones; calls already running finish. */
  close(): void {
    this.closed = true;
    this.cancelWake?.();
    this.cancelWake = null;
    for (const waiter of [...this.urgent.splice(0), ...this.background.splice(0)]) waiter.cancel(new LimiterClosed());
  }

  private pump(): void {
    while (!this.closed && this.inFlight < Math.max(1, this.options.maxInFlight)) {
      const now = this.options.clock.now();
      let next = this.urgent.shift();
      if (!next) {
        if (this.background.length === 0) return;
        // A clock that jumped backwards leaves lastStart in the future: wait one spacing, not the jump.
        if (this.lastStart > now) this.lastStart = now;
        const wait = this.lastStart + this.options.spacingMs() - now;
        if (wait > 0) {
          this.wakeIn(wait);
          return;
        }
        next = this.background.shift();
      }
      if (!next) return;
      this.inFlight += 1;
      this.lastStart = now;
      next.start();
    }
  }

  private wakeIn(ms: number): void {
    if (this.cancelWake) return;
    this.cancelWake = this.options.timers.after(ms, () => {
      this.cancelWake = null;
      this.pump();
    });
  }
}
