/**
 * Timers on a manual clock: `advance` moves the clock from one due timer to the next, runs it, and
 * lets the work it started finish (real I/O included) before going on, so hours of scheduling run
 * in milliseconds and in a repeatable order.
 */
import type { Timers } from '../../src/core/timers.js';

export interface SettableClock {
  now(): number;
  set(ms: number): void;
}

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

export class FakeTimers implements Timers {
  private pending: Pending[] = [];
  private seq = 0;

  /** `settle` waits for the work a timer started (e.g. the hub calls in flight). */
  constructor(
    private readonly clock: SettableClock,
    private readonly settle: () => Promise<void> = flush,
  ) {}

  after(ms: number, fn: () => void): () => void {
    const entry: Pending = { at: this.clock.now() + Math.max(0, ms), seq: this.seq++, fn };
    this.pending.push(entry);
    return () => {
      this.pending = this.pending.filter((p) => p !== entry);
    };
  }

  /** How many timers are armed. */
  get size(): number {
    return this.pending.length;
  }

  /** When the next timer fires, or null. */
  nextAt(): number | null {
    return this.earliest()?.at ?? null;
  }

  /** Run every timer due within `ms`, in order, each at its own time (those due together, together); then set the clock to the end. */
  async advance(ms: number, onTick?: (now: number) => void | Promise<void>): Promise<void> {
    const end = this.clock.now() + ms;
    await this.settle();
    for (;;) {
      const next = this.earliest();
      if (!next || next.at > end) break;
      // Every timer due at that moment fires together, as they would on a real clock.
      const due = this.pending.filter((p) => p.at <= next.at).sort((a, b) => a.at - b.at || a.seq - b.seq);
      this.pending = this.pending.filter((p) => !due.includes(p));
      if (next.at > this.clock.now()) this.clock.set(next.at);
      for (const timer of due) timer.fn();
      await this.settle();
      await onTick?.(this.clock.now());
    }
    this.clock.set(end);
  }

  private earliest(): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending) if (!best || p.at < best.at || (p.at === best.at && p.seq < best.seq)) best = p;
    return best;
  }
}

/** Let promise callbacks and pending I/O callbacks run. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A clock that only moves when told to. */
export function settableClock(start: number): SettableClock {
  let time = start;
  return {
    now: () => time,
    set: (ms: number) => {
      time = ms;
    },
  };
}
