/**
 * What the HTTP server may ask of the rest of the daemon. The server knows only this interface:
 * it never talks to the hub, the scheduler or the database itself.
 */
import type { ApiKey, S3Credentials } from './types.js';

export type AuthResult =
  | { readonly ok: true; readonly clientTokenId: string }
  | { readonly ok: false; readonly code: 'unauthorized' | 'forbidden' };

export interface CredentialSource {
  /**
   * Check a presented client token, by its SHA-256 digest (tokenDigest()), against a workspace,
   * in constant time.
   */
  authenticate(workspace: string, presentedDigest: Buffer): AuthResult;
  /**
   * The held credential when it is not yet due for renewal, from memory and synchronously; null
   * otherwise (then credentials() renews and decides). The answer to almost every request.
   */
  freshCredentials(workspace: string): S3Credentials | null;
  /**
   * A credential that is safe to hand out now, or null when none is. May wait briefly (bounded by
   * the configured request wait) for a renewal it started.
   */
  credentials(workspace: string): Promise<S3Credentials | null>;
  /** The workspace's active API key, or null. */
  apiKey(workspace: string): ApiKey | null;
  /**
   * Users (uids) besides the daemon's own that may read this workspace over TCP (#12): the system
   * service's per-workspace allow list. Absent, or an empty set: the daemon's own uid only.
   * Called on each request to a workspace route by a connection of another user, so it answers
   * from memory.
   */
  allowedUids?(workspace: string): ReadonlySet<number>;
}

/** What the admin endpoints may ask: force steps, read state. */
export interface AdminActions {
  refresh(workspace: string): Promise<{ ok: boolean; error?: string }>;
  rotate(workspace: string): Promise<{ ok: boolean; error?: string }>;
  snapshot(): unknown;
}
