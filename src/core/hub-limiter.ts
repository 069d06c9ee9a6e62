/**
 * Gentle on the hub (#13): at most a few calls in flight to one hub, and background calls
 * (scheduled renewals, retries nobody waits for) paced by a token bucket so that a cold start or
 * the end of an outage, when every workspace is due at once, reaches the hub as a stream rather
 * than a burst. A small burst passes at once, so a handful of workspaces never waits. Urgent calls
 * (a client is waiting) go first and are not paced.
 */
import type { Timers } from './timers.js';
import type { Clock } from './types.js';

export type CallPriority = 'urgent' | 'background';

export interface HubLimiterOptions {
  readonly maxInFlight: number;
  readonly clock: Clock;
  readonly timers: Timers;
  /** The pace of background calls: one more may start every this many ms; read at each start. */
  readonly spacingMs: () => number;
  /** How many background calls may start at once after a quiet spell (default: maxInFlight). */
  readonly burst?: number;
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
  /** Background starts available now (a token bucket refilled at one per spacing). */
  private tokens: number;
  private refilledAt: number;
  private readonly urgent: Waiter[] = [];
  private readonly background: Waiter[] = [];
  private cancelWake: (() => void) | null = null;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: HubLimiterOptions) {
    this.tokens = this.burst;
    this.refilledAt = options.clock.now();
  }

  private get burst(): number {
    return Math.max(1, this.options.burst ?? this.options.maxInFlight);
  }

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
        const wait = this.takeToken();
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

  /** Take a background token: 0 when one was taken, else how long until the next one. */
  private takeToken(): number {
    const now = this.options.clock.now();
    const spacing = Math.max(0, this.options.spacingMs());
    // A clock that jumped backwards: count from now, not from the future.
    if (this.refilledAt > now) this.refilledAt = now;
    if (spacing === 0) {
      this.tokens = this.burst;
    } else {
      const earned = Math.floor((now - this.refilledAt) / spacing);
      if (earned > 0) {
        this.tokens = Math.min(this.burst, this.tokens + earned);
        this.refilledAt = this.tokens === this.burst ? now : this.refilledAt + earned * spacing;
      }
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return this.refilledAt + spacing - now;
  }

  private wakeIn(ms: number): void {
    if (this.cancelWake) return;
    this.cancelWake = this.options.timers.after(ms, () => {
      this.cancelWake = null;
      this.pump();
    });
  }
}
