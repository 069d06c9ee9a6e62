/**
 * The broker: per-workspace state in memory, renewal with single flight and backoff, the sweep
 * the cron schedule drives, and the CredentialSource the server reads. Requests are answered from
 * memory; the database is written on renewal and read when the CLI changes it.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { WorkspaceEvents } from '../core/events.js';
import { backoffDelay, isDueForRenewal, isServable, renewalPoint } from '../core/policy.js';
import type { AuthResult, CredentialSource } from '../core/source.js';
import type { S3Credentials } from '../core/types.js';
import { tokenDigestHex } from '../store/client-tokens.js';
import type { StoredApiKey, WorkspaceRecord } from '../store/store.js';
import { describeFailure, isKeyRejection, type SchedulerDeps } from './hub.js';

/** At most this many hub calls from one sweep at a time (a cold start with many workspaces). */
const SWEEP_CONCURRENCY = 8;

export interface BrokerOptions extends SchedulerDeps {
  /** How long a request waits for a renewal it triggered (JS v3 gives up at 1000 ms). */
  readonly requestWaitMs: number;
  /** Learn the account id of fresh credentials (STS GetCallerIdentity); best effort. */
  readonly lookupAccountId?: ((c: S3Credentials, region: string) => Promise<string | undefined>) | undefined;
  /** Told of renewals, failures and removals (metrics, the credentials-file sink, the audit trail). */
  readonly events?: Pick<WorkspaceEvents, 'renewed' | 'failed' | 'removed'> | undefined;
}

/** What one call of renew() came to. */
export type RenewOutcome =
  | { readonly kind: 'renewed'; readonly credentials: S3Credentials }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string }
  | {
      readonly kind: 'skipped';
      readonly reason: 'unknown_workspace' | 'backing_off' | 'removed';
      readonly retryAt?: number | undefined;
    };

export interface LastError {
  readonly code: string;
  readonly message: string;
  readonly at: number;
}

/** The broker's live view of one workspace (the S3 side); no secret. */
export interface RenewalView {
  readonly record: WorkspaceRecord;
  readonly apiKey: Pick<StoredApiKey, 'tokenId' | 'expiresAt' | 'name' | 'storedAt'> | undefined;
  readonly current: Pick<S3Credentials, 'accessKeyId' | 'expiresAt' | 'issuedAt'> | undefined;
  readonly nextRenewalAt: number;
  readonly failures: number;
  readonly lastError: LastError | null;
  readonly keyRejected: boolean;
}

export class WorkspaceSlot {
  apiKey: StoredApiKey | undefined;
  current: S3Credentials | undefined;
  renewAt = 0;
  retryAt = 0;
  failures = 0;
  lastError: LastError | null = null;
  inFlight: Promise<RenewOutcome> | null = null;
  /** The id of the API key the renewal in flight uses. */
  inFlightKeyId: string | null = null;
  /** Set while the hub refuses the API key: renewal waits for backoff, status asks for the user. */
  keyRejected = false;

  constructor(public record: WorkspaceRecord) {}
}

export class Broker implements CredentialSource {
  private readonly slots = new Map<string, WorkspaceSlot>();
  /** SHA-256 (hex) of each client token → workspace name, to tell "wrong token" from "other workspace's". */
  private tokenOwners = new Map<string, string>();
  private readonly log: Logger;

  constructor(private readonly options: BrokerOptions) {
    this.log = options.logger.child({ module: 'broker' });
  }

  // ---- loading from the database -----------------------------------------------------------

  /** Bring memory in line with the database (at start, and whenever the CLI changed it). */
  sync(): void {
    const { store } = this.options;
    const records = store.listWorkspaces();
    const present = new Set<string>();
    for (const record of records) {
      present.add(record.name);
      let slot = this.slots.get(record.name);
      if (!slot || slot.record.id !== record.id) {
        if (slot) this.options.events?.removed?.(slot.record);
        slot = new WorkspaceSlot(record);
        this.slots.set(record.name, slot);
        this.log.info({ workspace: record.name }, 'workspace loaded');
      } else if (slot.record.clientTokenId !== record.clientTokenId) {
        this.log.info(
          { workspace: record.name, clientTokenId: record.clientTokenId },
          'client token replaced: the previous one is refused from now on',
        );
      }
      slot.record = record;
      this.loadSecrets(slot);
    }
    for (const [name, slot] of this.slots) {
      if (!present.has(name)) {
        this.slots.delete(name);
        this.options.events?.removed?.(slot.record);
        this.log.info({ workspace: name }, 'workspace removed');
      }
    }
    this.tokenOwners = new Map(
      [...this.slots.values()].map((s) => [s.record.clientTokenHash.toString('hex'), s.record.name]),
    );
  }

  private loadSecrets(slot: WorkspaceSlot): void {
    const { store } = this.options;
    try {
      const active = store.activeApiKey(slot.record.id);
      if (active && active.id !== slot.apiKey?.id) slot.keyRejected = false; // a new key deserves a try
      slot.apiKey = active;
      const stored = store.loadS3(slot.record.id);
      if (stored && (!slot.current || stored.expiresAt > slot.current.expiresAt)) {
        slot.current = stored;
        slot.renewAt = renewalPoint(stored, this.options.random);
        // Stored by `workspace add` (or before a restart) without an account id: learn it now
        // rather than at the next renewal.
        if (!stored.accountId) void this.learnAccountId(slot, stored);
      }
    } catch (err) {
      // A value that fails to open (damaged row) costs this workspace its cache, not the daemon.
      this.fail(slot, { code: 'store', message: `stored secrets unreadable: ${describeFailure(err).message}` });
    }
  }

  // ---- CredentialSource --------------------------------------------------------------------

  authenticate(workspace: string, presentedToken: string): AuthResult {
    const digestHex = tokenDigestHex(presentedToken);
    const digest = Buffer.from(digestHex, 'hex');
    const slot = this.slots.get(workspace);
    // Fixed-length digests compared in constant time: timing says nothing about the token.
    if (slot && timingSafeEqual(digest, slot.record.clientTokenHash)) {
      return { ok: true, clientTokenId: slot.record.clientTokenId };
    }
    const owner = this.tokenOwners.get(digestHex);
    return { ok: false, code: owner !== undefined ? 'forbidden' : 'unauthorized' };
  }

  freshCredentials(workspace: string): S3Credentials | null {
    const slot = this.slots.get(workspace);
    const held = slot?.current;
    return held && !isDueForRenewal(held, slot.renewAt, this.options.clock.now()) ? held : null;
  }

  async credentials(workspace: string): Promise<S3Credentials | null> {
    const fresh = this.freshCredentials(workspace);
    if (fresh) return fresh;
    const slot = this.slots.get(workspace);
    if (!slot) return null;
    // Past the renewal point: the sweep was late, failing, or the machine slept. Renew now and
    // give the hub a short while; then answer with whatever is still safe to serve.
    const renewal = this.renew(workspace);
    if (slot.inFlight) await waitAtMost(renewal, this.options.requestWaitMs);
    const best = slot.current;
    return best && isServable(best, this.options.clock.now()) ? best : null;
  }

  apiKey(workspace: string): StoredApiKey | null {
    return this.slots.get(workspace)?.apiKey ?? null;
  }

  // ---- renewal -----------------------------------------------------------------------------

  /** One workspace's state, for reading (only the broker writes it). */
  slot(workspace: string): Readonly<WorkspaceSlot> | undefined {
    return this.slots.get(workspace);
  }

  /** Every workspace's state, for reading: the credentials-file sink, the metrics gauges. */
  workspaces(): ReadonlyArray<Readonly<WorkspaceSlot>> {
    return [...this.slots.values()];
  }

  records(): WorkspaceRecord[] {
    return [...this.slots.values()].map((s) => s.record);
  }

  /** The live view of every workspace (for status and metrics); copies, so callers cannot change state. */
  views(): RenewalView[] {
    return [...this.slots.values()].map((s) => ({
      record: s.record,
      apiKey: s.apiKey && {
        tokenId: s.apiKey.tokenId,
        expiresAt: s.apiKey.expiresAt,
        name: s.apiKey.name,
        storedAt: s.apiKey.storedAt,
      },
      current: s.current && {
        accessKeyId: s.current.accessKeyId,
        expiresAt: s.current.expiresAt,
        issuedAt: s.current.issuedAt,
      },
      nextRenewalAt: s.current ? Math.max(s.renewAt, s.retryAt) : s.retryAt || this.options.clock.now(),
      failures: s.failures,
      lastError: s.lastError,
      keyRejected: s.keyRejected,
    }));
  }

  /**
   * Switch a workspace to the active key in the database (a rotation promoted a new one) and
   * resolve once no renewal that started with the old key is in flight (#17: a key is never revoked
   * while a renewal uses it).
   */
  async useActiveKey(workspace: string): Promise<void> {
    const slot = this.slots.get(workspace);
    if (!slot) return;
    const active = this.options.store.activeApiKey(slot.record.id);
    if (active && active.id !== slot.apiKey?.id) slot.keyRejected = false;
    slot.apiKey = active;
    // A renewal started with an older key may still be in flight; later ones use the new key.
    while (slot.inFlight && slot.inFlightKeyId !== active?.id) await slot.inFlight.catch(() => undefined);
  }

  /**
   * Renew one workspace's S3 credentials. Concurrent callers share the call in flight (single
   * flight); while backing off after a failure nothing is sent unless `force` is set.
   */
  renew(workspace: string, force = false): Promise<RenewOutcome> {
    const slot = this.slots.get(workspace);
    if (!slot) return Promise.resolve({ kind: 'skipped', reason: 'unknown_workspace' });
    if (slot.inFlight) return slot.inFlight;
    const now = this.options.clock.now();
    // A clock that jumped backwards must not strand us in a backoff longer than any we set.
    if (slot.retryAt - now > this.options.backoff.maxMs) slot.retryAt = now;
    if (!force && now < slot.retryAt) {
      return Promise.resolve({ kind: 'skipped', reason: 'backing_off', retryAt: slot.retryAt });
    }
    const apiKey = slot.apiKey;
    if (!apiKey) {
      const failure = { code: 'no_api_key', message: 'the workspace has no active API key' };
      this.fail(slot, failure);
      return Promise.resolve({ kind: 'failed', ...failure });
    }
    slot.inFlightKeyId = apiKey.id;
    slot.inFlight = this.fetch(slot, apiKey).finally(() => {
      slot.inFlight = null;
      slot.inFlightKeyId = null;
    });
    return slot.inFlight;
  }

  private async fetch(slot: WorkspaceSlot, apiKey: StoredApiKey): Promise<RenewOutcome> {
    const { clock, store } = this.options;
    const name = slot.record.name;
    let fresh: S3Credentials;
    try {
      fresh = await this.options.hubFor(slot.record.hubUrl).s3Credentials(name, apiKey.key, clock.now());
    } catch (err) {
      const failure = describeFailure(err);
      slot.keyRejected = isKeyRejection(err);
      if (slot.keyRejected) {
        failure.message = `the API key was revoked or expired on the hub (${failure.message}); create a key in the EODH web UI and run "eodh-credd workspace set-key ${name}"`;
      }
      this.fail(slot, failure);
      return { kind: 'failed', ...failure };
    }
    if (this.slots.get(name) !== slot) return { kind: 'skipped', reason: 'removed' }; // removed while we waited
    // The account does not change between renewals: keep serving the known id until STS confirms.
    const creds: S3Credentials = { ...fresh, accountId: slot.current?.accountId };
    slot.current = creds;
    slot.renewAt = renewalPoint(creds, this.options.random);
    slot.failures = 0;
    slot.retryAt = 0;
    slot.lastError = null;
    slot.keyRejected = false;
    try {
      store.saveRenewal(slot.record.id, creds, clock.now());
    } catch (err) {
      this.log.error({ workspace: name, err: describeFailure(err) }, 'could not persist renewed credentials');
    }
    this.log.info(
      {
        workspace: name,
        expiresAt: new Date(creds.expiresAt).toISOString(),
        renewAt: new Date(slot.renewAt).toISOString(),
      },
      'S3 credentials renewed',
    );
    this.options.events?.renewed?.(slot.record, creds);
    void this.learnAccountId(slot, creds);
    return { kind: 'renewed', credentials: creds };
  }

  private async learnAccountId(slot: WorkspaceSlot, creds: S3Credentials): Promise<void> {
    const lookup = this.options.lookupAccountId;
    if (!lookup) return;
    try {
      const accountId = await lookup(creds, slot.record.region);
      const current = slot.current;
      if (!accountId || !current || current.accessKeyId !== creds.accessKeyId) return;
      slot.current = { ...current, accountId };
      this.options.store.setAccountId(slot.record.id, creds.accessKeyId, accountId);
    } catch (err) {
      this.log.debug({ workspace: slot.record.name, err: describeFailure(err) }, 'account id lookup failed');
    }
  }

  private fail(slot: WorkspaceSlot, failure: { code: string; message: string }): void {
    const { clock, random, backoff, store } = this.options;
    const now = clock.now();
    slot.failures += 1;
    const delay = backoffDelay(slot.failures, backoff, random, slot.current, now);
    slot.retryAt = now + delay;
    slot.lastError = { ...failure, at: now };
    try {
      store.recordFailure(slot.record.id, failure.code, failure.message, now);
    } catch {
      // Status bookkeeping must never turn one failure into two.
    }
    this.log.warn(
      { workspace: slot.record.name, code: failure.code, failures: slot.failures, retryInMs: delay },
      `renewal failed: ${failure.message}`,
    );
    this.options.events?.failed?.(slot.record, failure);
  }

  /** Renew every workspace that is due (or has nothing); called by the cron schedule. */
  async sweep(): Promise<void> {
    const now = this.options.clock.now();
    const due = [...this.slots.values()].filter((s) => !s.current || isDueForRenewal(s.current, s.renewAt, now));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length) {
        const slot = due[next++]!;
        await this.renew(slot.record.name);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SWEEP_CONCURRENCY, due.length) }, worker));
  }

  /** Wait for every renewal in flight (graceful stop). */
  async settle(): Promise<void> {
    await Promise.all([...this.slots.values()].map((s) => s.inFlight));
  }
}

/** Resolve when the promise settles or after `ms`, whichever is first; never rejects. */
function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
