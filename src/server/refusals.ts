/**
 * The log of refused requests (#12 item 8). Anyone on the machine can send refused requests as
 * fast as the daemon answers, from any of the 2^24 addresses of 127.0.0.0/8, so a line per refusal
 * would let them flood the journal. Per window: the first refusal from each source gets its own
 * line (up to MAX_LINES_PER_WINDOW lines); everything else is counted, and one summary line at
 * the end of the window says how many refusals were not logged, from how many sources, and which
 * sources sent the most.
 */
import type { Logger } from 'pino';

const MAX_LINES_PER_WINDOW = 20;
/** Sources named in a summary line. */
const TOP_SOURCES = 5;
/** Distinct sources counted per window; beyond this they are counted together. */
const MAX_COUNTED_SOURCES = 10_000;

export interface Refusal {
  /** The source as the rate limit keys it ("uid:1001", "loopback", an address). */
  readonly source: string;
  readonly level: 'info' | 'warn';
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

export class RefusalLog {
  private logged = new Set<string>();
  private unlogged = new Map<string, number>();
  private unloggedTotal = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly windowMs: number,
  ) {}

  record(refusal: Refusal): void {
    this.timer ??= setTimeout(() => this.flush(), this.windowMs).unref();
    // One line per source and kind of refusal (refused, throttled), so a throttle is always seen.
    const seen = `${refusal.source}|${refusal.message}`;
    if (!this.logged.has(seen) && this.logged.size < MAX_LINES_PER_WINDOW) {
      this.logged.add(seen);
      this.log[refusal.level]({ source: refusal.source, ...refusal.fields }, refusal.message);
      return;
    }
    this.unloggedTotal++;
    const key = this.unlogged.size < MAX_COUNTED_SOURCES ? refusal.source : 'others';
    this.unlogged.set(key, (this.unlogged.get(key) ?? 0) + 1);
  }

  /** Ends the window: the summary line (if anything went unlogged), then a fresh window. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.unloggedTotal > 0) {
      const top = [...this.unlogged]
        .sort((a, b) => b[1] - a[1])
        .slice(0, TOP_SOURCES)
        .map(([source, count]) => ({ source, count }));
      this.log.warn(
        { refused: this.unloggedTotal, sources: this.unlogged.size, top, windowMs: this.windowMs },
        'refused requests summarised: not logged one by one',
      );
    }
    this.logged = new Set();
    this.unlogged = new Map();
    this.unloggedTotal = 0;
  }
}
