/** Pure data types shared by every layer. No I/O here. */

/** Temporary S3 credentials as the hub hands them out (times in epoch milliseconds). */
export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  /** When the credential stops working. */
  readonly expiresAt: number;
  /** When we received it; with expiresAt this gives the lifetime the renewal policy scales by. */
  readonly issuedAt: number;
  /** From STS GetCallerIdentity, best effort. */
  readonly accountId?: string | undefined;
}

/** A workspace API key ("DataHub API Key"). */
export interface ApiKey {
  /** The hub's token id ("Token ID" in the web UI); absent when the user did not give it. */
  readonly tokenId: string | null;
  readonly key: string;
  /** Epoch ms; null when unknown. */
  readonly expiresAt: number | null;
}

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A source of uniform random numbers in [0, 1); injected so jitter is testable. */
export type Random = () => number;
