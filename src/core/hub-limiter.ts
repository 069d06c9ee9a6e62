/**
 * Gentle on the hub (#13): at most a few calls in flight to one hub, and at most so many background
 * calls (scheduled renewals, retries nobody waits for) starting in any one second, so that a cold
 * start or the end of an outage, when every workspace is due at once, reaches the hub as a steady
 * stream rather than a burst. Urgent calls (a client is waiting) go first and are not paced.
 */
import type { Timers } from './timers.js';
import type { Clock } from './types.js';

export type CallPriority = 'urgent' | 'background';

export interface HubLimiterOptions {
  readonly maxInFlight: number;
  readonly clock: Clock;
  readonly timers: Timers;
  /** How many background calls may start in any one second (a sliding window); read at each start. */
  readonly perSecond: () => number;
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
  /** When the latest background calls started, oldest first (at most perSecond of them are kept). */
  private backgroundStarts: number[] = [];
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
      let next = this.urgent.shift();
      if (!next) {
        if (this.background.length === 0) return;
        const wait = this.backgroundWait();
        if (wait > 0) {
          this.wakeIn(wait);
          return;
        }
        next = this.background.shift();
      }
      if (!next) return;
      this.inFlight += 1;
      next.start();
    }
  }

  /** 0 when a background call may start now (and counts it), else how long until one may. */
  private backgroundWait(): number {
    const now = this.options.clock.now();
    const limit = Math.max(1, Math.floor(this.options.perSecond()));
    // Starts more than a second ago no longer count; nor do ones "in the future" after a clock jump.
    this.backgroundStarts = this.backgroundStarts.filter((at) => at > now - 1000 && at <= now).slice(-limit);
    if (this.backgroundStarts.length < limit) {
      this.backgroundStarts.push(now);
      return 0;
    }
    return (this.backgroundStarts[0] ?? now) + 1000 - now;
  }

  private wakeIn(ms: number): void {
    if (this.cancelWake) return;
    this.cancelWake = this.options.timers.after(ms, () => {
      this.cancelWake = null;
      this.pump();
    });
  }
}
