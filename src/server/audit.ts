/**
 * The audit trail: one line each time a credential goes to a client it has not gone to before
 * (workspace, client token id, remote address, the last 4 characters of the access key id,
 * expiry). Repeats of the same credential to the same client are not logged again: botocore and
 * the SDKs poll every few minutes, and a line per poll would put logging on the hot path while
 * adding nothing an auditor needs. Never a secret.
 */
import type { Logger } from 'pino';
import type { EventWorkspace, WorkspaceEvents } from '../core/events.js';
import { rfc3339 } from '../core/time.js';
import type { S3Credentials } from '../core/types.js';

const MAX_REMEMBERED = 10_000;

export class AuditTrail implements WorkspaceEvents {
  private readonly seen = new Set<string>();
  // What each connection was handed last: a client polling on a kept-alive connection gets the
  // same credential with the same token again and again, and that needs no key built or looked up.
  private readonly lastOnConnection = new WeakMap<object, { creds: S3Credentials; clientTokenId: string }>();
  private readonly log: Logger;

  constructor(logger: Logger) {
    this.log = logger.child({ audit: true });
  }

  /**
   * `uid` is the user of the process that got it (null where none is known: the Unix socket,
   * another machine). Users a workspace allows share its client token (#12), so the uid is what
   * tells them apart. `connection` (the socket it went out on) lets a repeat on the same
   * connection return at once.
   */
  handedOut(
    workspace: string,
    clientTokenId: string,
    remote: string,
    creds: S3Credentials,
    uid: number | null = null,
    connection?: object,
  ): void {
    if (connection !== undefined) {
      const last = this.lastOnConnection.get(connection);
      if (last?.creds === creds && last.clientTokenId === clientTokenId) return;
      this.lastOnConnection.set(connection, { creds, clientTokenId });
    }
    const key = `${workspace}|${clientTokenId}|${remote}|${uid}|${creds.accessKeyId}`;
    if (!this.remember(key)) return;
    this.log.info(
      {
        workspace,
        clientTokenId,
        remote,
        uid,
        accessKeyIdEnd: creds.accessKeyId.slice(-4),
        expiresAt: rfc3339(creds.expiresAt),
      },
      'S3 credential handed out',
    );
  }

  apiKeyHandedOut(
    workspace: string,
    clientTokenId: string,
    remote: string,
    tokenId: string | null,
    uid: number | null = null,
  ): void {
    const key = `${workspace}|${clientTokenId}|${remote}|${uid}|api:${tokenId}`;
    if (!this.remember(key)) return;
    this.log.info({ workspace, clientTokenId, remote, uid, tokenId }, 'API key handed out');
  }

  /** The API key changed hands: an auditor wants to know which key id serves the workspace now. */
  rotated(
    workspace: EventWorkspace,
    key: { readonly tokenId: string | null; readonly expiresAt: number | null },
  ): void {
    this.log.info(
      {
        workspace: workspace.name,
        tokenId: key.tokenId,
        expiresAt: key.expiresAt === null ? null : rfc3339(key.expiresAt),
      },
      'API key rotated',
    );
  }

  removed(workspace: EventWorkspace): void {
    this.log.info({ workspace: workspace.name }, 'workspace removed; its credentials are no longer served');
  }

  private remember(key: string): boolean {
    if (this.seen.has(key)) return false;
    if (this.seen.size >= MAX_REMEMBERED) this.seen.clear();
    this.seen.add(key);
    return true;
  }
}
