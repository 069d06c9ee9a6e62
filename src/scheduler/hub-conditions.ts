/**
 * What the scheduler keeps per hub rather than per workspace (#13): the limiter every call to it
 * goes through, and the estimate of its clock from the Date of its answers.
 */
import { HubClockSense, type HubDateSample } from '../core/clock-sense.js';
import { type CallPriority, HubLimiter } from '../core/hub-limiter.js';
import { backgroundCallsPerSecond } from '../core/policy.js';
import type { Timers } from '../core/timers.js';
import type { Clock } from '../core/types.js';

/** At most this many calls to one hub at a time, from all its workspaces together. */
export const HUB_MAX_IN_FLIGHT = 4;

export interface HubConditionsOptions {
  readonly clock: Clock;
  readonly timers: Timers;
  /** Lifetimes (ms) of the credentials of the workspaces on a hub; 0 where none is held yet. */
  readonly lifetimesOn: (hubUrl: string) => number[];
  readonly maxInFlight?: number;
  /** Background calls per second for a hub from its lifetimes (default: backgroundCallsPerSecond). */
  readonly backgroundPace?: (lifetimesMs: readonly number[]) => number;
}

interface PerHub {
  readonly limiter: HubLimiter;
  readonly clock: HubClockSense;
}

export class HubConditions {
  private readonly hubs = new Map<string, PerHub>();

  constructor(private readonly options: HubConditionsOptions) {}

  /** Run a call to the hub through its limiter. */
  run<T>(hubUrl: string, priority: CallPriority, call: () => Promise<T>): Promise<T> {
    return this.of(hubUrl).limiter.run(priority, call);
  }

  /** Feed the Date of one of the hub's answers (HubClientOptions.onDate). */
  observeDate(hubUrl: string, sample: HubDateSample): void {
    this.of(hubUrl).clock.observe(sample);
  }

  /** The hub's clock minus ours (ms), or null while nothing is known. */
  offsetMs(hubUrl: string): number | null {
    return this.hubs.get(hubUrl)?.clock.offsetMs() ?? null;
  }

  /** How far the hub's clock is proven ahead of ours (ms, ≥ 0): expiry times it sends are judged that much earlier. */
  aheadMs(hubUrl: string): number {
    return this.hubs.get(hubUrl)?.clock.aheadMs() ?? 0;
  }

  /** Calls running now, to every hub. */
  get running(): number {
    let sum = 0;
    for (const hub of this.hubs.values()) sum += hub.limiter.running;
    return sum;
  }

  /** Resolves once no call to any hub is running. */
  async idle(): Promise<void> {
    await Promise.all([...this.hubs.values()].map((h) => h.limiter.idle()));
  }

  /** Fail the calls still queued; running ones finish. */
  close(): void {
    for (const hub of this.hubs.values()) hub.limiter.close();
  }

  private of(hubUrl: string): PerHub {
    let hub = this.hubs.get(hubUrl);
    if (!hub) {
      const { clock, timers, lifetimesOn } = this.options;
      hub = {
        limiter: new HubLimiter({
          clock,
          timers,
          maxInFlight: this.options.maxInFlight ?? HUB_MAX_IN_FLIGHT,
          perSecond: () => (this.options.backgroundPace ?? backgroundCallsPerSecond)(lifetimesOn(hubUrl)),
        }),
        clock: new HubClockSense(),
      };
      this.hubs.set(hubUrl, hub);
    }
    return hub;
  }
}

/** The Retry-After a failed hub call carried (HubError.retryAfterMs), if any. */
export function retryAfterOf(err: unknown): number | undefined {
  const value = err && typeof err === 'object' ? (err as { retryAfterMs?: unknown }).retryAfterMs : undefined;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
