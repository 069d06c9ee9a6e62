/** What the scheduler needs from a hub: the narrow face of upstream's HubClient. */
import type { Logger } from 'pino';
import type { BackoffOptions } from '../core/policy.js';
import type { Clock, Random, S3Credentials } from '../core/types.js';
import type { Store } from '../store/store.js';

export interface HubToken {
  readonly id: string;
  readonly name?: string | null | undefined;
  /** The workspace the record belongs to: a list may span every workspace of the user (#11). */
  readonly workspace?: string | null | undefined;
  readonly expiresAt?: number | null | undefined;
}

export interface Hub {
  s3Credentials(workspace: string, apiKey: string, now: number): Promise<S3Credentials>;
  listTokens(workspace: string, apiKey: string): Promise<{ tokens: HubToken[]; unreadable: number }>;
  createToken(
    workspace: string,
    apiKey: string,
    request: { name: string; expiresDays: number },
  ): Promise<HubToken & { token: string }>;
  deleteToken(workspace: string, apiKey: string, id: string): Promise<void>;
  workspaceInfo(workspace: string, apiKey: string): Promise<{ bucket: string | null; prefix: string | null }>;
}

/** One hub client per hub URL; workspaces on the same hub share it. */
export type HubFor = (hubUrl: string) => Hub;

/** What the broker and the key rotator both work with. */
export interface SchedulerDeps {
  readonly store: Store;
  readonly hubFor: HubFor;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly backoff: BackoffOptions;
}

/** Describe a failure for status and logs without ever carrying a secret: kind and message only. */
export function describeFailure(err: unknown): { code: string; message: string } {
  if (err && typeof err === 'object' && 'kind' in err && typeof (err as { kind: unknown }).kind === 'string') {
    const { kind, message } = err as { kind: string; message?: unknown };
    return { code: kind, message: String(message ?? kind) };
  }
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}

export function isKeyRejection(err: unknown): boolean {
  const code = describeFailure(err).code;
  return code === 'unauthorized' || code === 'forbidden';
}

/** The HTTP status of a hub error, if it had one. */
export function statusOf(err: unknown): number | undefined {
  const status = err && typeof err === 'object' ? (err as { status?: unknown }).status : undefined;
  return typeof status === 'number' ? status : undefined;
}

/**
 * A final "no" from the hub (any status below 500 but 429): which status a hub answers when an API
 * key may not list, mint or delete keys is not documented, so all are treated alike (#11).
 */
export function isRefusal(err: unknown): boolean {
  const status = statusOf(err);
  return status !== undefined && status < 500 && status !== 429;
}
