/**
 * What happens to a workspace, told to whoever listens: metrics count it, the credentials-file
 * sink writes or removes a profile, the audit trail records it. One declared interface instead of
 * callbacks threaded through constructors (#14).
 */
import type { S3Credentials } from './types.js';

/** The little of a workspace every listener needs. */
export interface EventWorkspace {
  readonly id: string;
  readonly name: string;
  readonly fileSink: string | null;
}

export interface WorkspaceEvents {
  /** Fresh S3 credentials arrived from the hub. */
  renewed?(workspace: EventWorkspace, credentials: S3Credentials): void;
  /** A renewal failed; `code` is a short reason (unauthorized, hub_down, …). */
  failed?(workspace: EventWorkspace, failure: { readonly code: string; readonly message: string }): void;
  /** The workspace disappeared from the database. */
  removed?(workspace: EventWorkspace): void;
  /** The API key was replaced by one this installation minted. */
  rotated?(
    workspace: EventWorkspace,
    key: { readonly tokenId: string | null; readonly expiresAt: number | null },
  ): void;
}

type EventName = keyof WorkspaceEvents;

/**
 * Every listener hears every event, in order; one that throws is logged through `onError` and
 * does not keep the others (or the caller) from going on.
 */
export function fanOut(
  listeners: readonly WorkspaceEvents[],
  onError: (event: EventName, err: unknown) => void,
): Required<WorkspaceEvents> {
  const emit =
    <E extends EventName>(event: E) =>
    (...args: Parameters<Required<WorkspaceEvents>[E]>): void => {
      for (const listener of listeners) {
        const handler = listener[event] as ((...a: typeof args) => void) | undefined;
        if (!handler) continue;
        try {
          handler.apply(listener, args);
        } catch (err) {
          onError(event, err);
        }
      }
    };
  return { renewed: emit('renewed'), failed: emit('failed'), removed: emit('removed'), rotated: emit('rotated') };
}
