/**
 * One timer per workspace (#13): each renews at its own jittered time rather than on a shared
 * tick, so many workspaces never wake together just because a schedule fired.
 */
import type { Timers } from '../core/timers.js';
import type { Clock } from '../core/types.js';

export class KeyedTimers {
  private readonly armed = new Map<string, { at: number; cancel: () => void }>();

  constructor(
    private readonly timers: Timers,
    private readonly clock: Clock,
  ) {}

  /** Run `fn` for `key` at `at` (epoch ms, our clock), replacing any timer the key had. */
  set(key: string, at: number, fn: () => void): void {
    this.clear(key);
    const entry = {
      at,
      cancel: this.timers.after(at - this.clock.now(), () => {
        if (this.armed.get(key) === entry) this.armed.delete(key);
        fn();
      }),
    };
    this.armed.set(key, entry);
  }

  /** When the key's timer fires, or undefined when none is armed. */
  at(key: string): number | undefined {
    return this.armed.get(key)?.at;
  }

  clear(key: string): void {
    this.armed.get(key)?.cancel();
    this.armed.delete(key);
  }

  clearAll(): void {
    for (const key of [...this.armed.keys()]) this.clear(key);
  }

  get size(): number {
    return this.armed.size;
  }
}
