/**
 * How far the hub's clock is from ours, learnt from the `Date` header of its answers (#13).
 *
 * The hub writes credential expiry times by its clock (the STS one behind it); AWS clients and we
 * compare them with this machine's. If ours is slow, a credential looks alive after it died. So
 * expiry is judged by the more pessimistic of the two clocks: a credential received from a hub
 * that is ahead of us is held, and served, as expiring that much earlier.
 *
 * `Date` has whole seconds and was stamped somewhere between sending and receiving, so each answer
 * bounds the offset rather than measuring it. Only what the bounds prove is applied to expiry
 * times; one odd answer (a cache, a proxy) is outvoted by the median of the last few.
 */

export interface HubDateSample {
  /** The hub's Date header, epoch ms (whole seconds). */
  readonly hubDate: number;
  /** Our clock when the request was sent. */
  readonly sentAt: number;
  /** Our clock when the answer's headers arrived. */
  readonly receivedAt: number;
}

export interface OffsetBounds {
  /** The hub's clock minus ours is at least this... */
  readonly low: number;
  /** ...and at most this. */
  readonly high: number;
}

/** status and doctor mention the offset once it is larger than this. */
export const OFFSET_SHOWN_ABOVE_MS = 30_000;

/** How many recent answers the estimate is drawn from. */
const SAMPLES_KEPT = 5;

/** What one answer says about the offset (hub minus local). */
export function offsetBounds(sample: HubDateSample): OffsetBounds {
  return { low: sample.hubDate - sample.receivedAt, high: sample.hubDate + 1000 - sample.sentAt };
}

/** A credential's expiry on our clock, judged pessimistically: earlier by as much as the hub is proven ahead. */
export function localExpiry(hubExpiresAt: number, hubAheadMs: number): number {
  return hubExpiresAt - Math.max(0, hubAheadMs);
}

/** Whether an offset is large enough to mention in `status` and `doctor`. */
export function offsetWorthShowing(offsetMs: number | null): offsetMs is number {
  return offsetMs !== null && Math.abs(offsetMs) > OFFSET_SHOWN_ABOVE_MS;
}

/** "hub clock 4 min 0 s ahead of this machine's" */
export function describeOffset(offsetMs: number): string {
  const seconds = Math.round(Math.abs(offsetMs) / 1000);
  const amount = seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
  return `hub clock ${amount} ${offsetMs >= 0 ? 'ahead of' : 'behind'} this machine's`;
}

/** The offset estimate for one hub. */
export class HubClockSense {
  private samples: OffsetBounds[] = [];

  observe(sample: HubDateSample): void {
    if (!Number.isFinite(sample.hubDate) || sample.receivedAt < sample.sentAt) return;
    this.samples.push(offsetBounds(sample));
    if (this.samples.length > SAMPLES_KEPT) this.samples.shift();
  }

  /** The best estimate of hub minus local (ms), or null before any answer. */
  offsetMs(): number | null {
    const mid = median(this.samples.map((b) => (b.low + b.high) / 2));
    return mid === null ? null : Math.round(mid);
  }

  /** How far ahead of ours the hub's clock is proven to be (0 when it is not, or nothing is known). */
  aheadMs(): number {
    return Math.max(0, median(this.samples.map((b) => b.low)) ?? 0);
  }
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const upper = sorted[sorted.length >> 1] ?? 0;
  const lower = sorted[(sorted.length - 1) >> 1] ?? upper;
  return (lower + upper) / 2;
}
