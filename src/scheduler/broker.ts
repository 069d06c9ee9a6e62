/**
 * The broker: per-workspace state in memory, renewal with single flight and backoff, one timer per
 * workspace at its jittered renewal or retry time, and the CredentialSource the server reads.
 * Requests are answered from memory; the database is written on renewal and read when the CLI
 * changes it. The cron sweep is only a safety net behind the timers.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { type Accounts, describeGrant, type Grant, NO_ACCOUNTS, uidsAllowed } from '../core/access.js';
import { localExpiry } from '../core/clock-sense.js';
import type { WorkspaceEvents } from '../core/events.js';
import type { CallPriority } from '../core/hub-limiter.js';
import {
  isDueForRenewal,
  isServable,
  lifetimeOf,
  mayStartOnRequest,
  nextAttemptAt,
  RETRY_AFTER_CAP_MS,
  renewalPoint,
} from '../core/policy.js';
import type { AuthResult, CredentialSource } from '../core/source.js';
import { systemTimers, type Timers } from '../core/timers.js';
import type { S3Credentials } from '../core/types.js';
import type { StoredApiKey, WorkspaceRecord } from '../store/store.js';
import { describeFailure, isKeyRejection, type SchedulerDeps } from './hub.js';
import { HubConditions, retryAfterOf } from './hub-conditions.js';
import { KeyedTimers } from './workspace-timers.js';

/** At most this many hub calls from one sweep at a time (a cold start with many workspaces). */
const SWEEP_CONCURRENCY = 8;

const NO_UIDS: ReadonlySet<number> = new Set();

export interface BrokerOptions extends SchedulerDeps {
  /** How long a request waits for a renewal it triggered (JS v3 gives up at 1000 ms). */
  readonly requestWaitMs: number;
  /** Learn the account id of fresh credentials (STS GetCallerIdentity); best effort. */
  readonly lookupAccountId?: ((c: S3Credentials, region: string) => Promise<string | undefined>) | undefined;
  /** Told of renewals, failures and removals (metrics, the credentials-file sink, the audit trail). */
  readonly events?: Pick<WorkspaceEvents, 'renewed' | 'failed' | 'removed'> | undefined;
  /** The timers each workspace's renewal runs on (injected in tests). */
  readonly timers?: Timers | undefined;
  /** Per-hub call limiter and clock estimate; shared with the hub clients that feed it Date headers. */
  readonly hubConditions?: HubConditions | undefined;
  /**
   * The machine's users and groups (config/accounts.ts), for group grants: asked whenever a
   * request from another user needs a group resolved, so it answers from memory.
   */
  readonly accounts?: (() => Accounts) | undefined;
}

/** What one call of renew() came to. */
export type RenewOutcome =
  | { readonly kind: 'renewed'; readonly credentials: S3Credentials }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string }
  | {
      readonly kind: 'skipped';
      readonly reason: 'unknown_workspace' | 'backing_off' | 'removed' | 'stopped';
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
  /** The hub's clock minus ours, from the Date of its answers (null until it answered). */
  readonly hubClockOffsetMs: number | null;
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
  /** When the last hub call for this workspace started: requests start one at most every few seconds. */
  lastAttemptAt = Number.NEGATIVE_INFINITY;
  /** Before this the hub asked (Retry-After) not to be called for this workspace. */
  hubRetryAt = 0;
  /** Set while the hub refuses the API key: renewal waits for backoff, status asks for the user. */
  keyRejected = false;
  /** The users and groups besides the daemon's own allowed to read this workspace (#12). */
  grants: readonly Grant[] = [];
  /** The uids the grants came to, and the accounts they were resolved against (null: users only). */
  allowed: { readonly from: Accounts | null; readonly uids: ReadonlySet<number> } | null = null;

  constructor(public record: WorkspaceRecord) {}
}

export class Broker implements CredentialSource {
  private readonly slots = new Map<string, WorkspaceSlot>();
  /** SHA-256 (hex) of each client token → workspace name, to tell "wrong token" from "other workspace's". */
  private tokenOwners = new Map<string, string>();
  private readonly log: Logger;
  private readonly hubs: HubConditions;
  private readonly timers: KeyedTimers;
  private stopped = false;

  constructor(private readonly options: BrokerOptions) {
    this.log = options.logger.child({ module: 'broker' });
    const timers = options.timers ?? systemTimers;
    this.timers = new KeyedTimers(timers, options.clock);
    this.hubs =
      options.hubConditions ??
      new HubConditions({ clock: options.clock, timers, lifetimesOn: (hubUrl) => this.lifetimesOn(hubUrl) });
  }

  /** The lifetimes of the credentials of the workspaces on a hub (0 where none is held): its background pace. */
  lifetimesOn(hubUrl: string): number[] {
    const lifetimes: number[] = [];
    for (const slot of this.slots.values()) {
      if (slot.record.hubUrl === hubUrl) lifetimes.push(slot.current ? lifetimeOf(slot.current) : 0);
    }
    return lifetimes;
  }

  // ---- loading from the database -----------------------------------------------------------

  /** Bring memory in line with the database (at start, and whenever the CLI changed it). */
  sync(): void {
    const { store } = this.options;
    const records = store.listWorkspaces();
    const access = store.allAccess();
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
        const until = record.previousClientToken?.until;
        this.log.info(
          { workspace: record.name, clientTokenId: record.clientTokenId },
          until === undefined
            ? 'client token replaced: the previous one is refused from now on'
            : `client token replaced: the previous one keeps working until ${new Date(until).toISOString()}`,
        );
      }
      slot.record = record;
      this.setGrants(slot, access.get(record.id) ?? []);
      this.loadSecrets(slot);
      if (this.timers.at(record.name) === undefined) this.schedule(slot);
    }
    for (const [name, slot] of this.slots) {
      if (!present.has(name)) {
        this.slots.delete(name);
        this.timers.clear(name);
        this.options.events?.removed?.(slot.record);
        this.log.info({ workspace: name }, 'workspace removed');
      }
    }
    this.tokenOwners = new Map(
      [...this.slots.values()].map((s) => [s.record.clientTokenHash.toString('hex'), s.record.name]),
    );
  }

  private setGrants(slot: WorkspaceSlot, grants: readonly Grant[]): void {
    const described = grants.map(describeGrant);
    if (described.join('\n') === slot.grants.map(describeGrant).join('\n')) return;
    slot.grants = grants;
    slot.allowed = null;
    this.log.info(
      { audit: true, workspace: slot.record.name, allowed: described },
      described.length === 0
        ? "workspace access changed: only the daemon's own user may read it"
        : `workspace access changed: also allowed ${described.join(', ')}`,
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

  authenticate(workspace: string, digest: Buffer): AuthResult {
    const slot = this.slots.get(workspace);
    // Fixed-length digests compared in constant time: timing says nothing about the token.
    if (slot && timingSafeEqual(digest, slot.record.clientTokenHash)) {
      return { ok: true, clientTokenId: slot.record.clientTokenId };
    }
    // The token replaced by `client-token rotate`, during its grace period (#15): processes given
    // the token by value keep working until they are restarted with the new one.
    const previous = slot?.record.previousClientToken;
    if (previous && this.options.clock.now() < previous.until && timingSafeEqual(digest, previous.hash)) {
      return { ok: true, clientTokenId: previous.id };
    }
    const owner = this.tokenOwners.get(digest.toString('hex'));
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
    // Past the renewal point: the timer was late, failing, or the machine slept. Renew now and
    // give the hub a short while; then answer with whatever is still safe to serve.
    const renewal = this.renewOnRequest(slot);
    if (slot.inFlight) await waitAtMost(renewal, this.options.requestWaitMs);
    const best = slot.current;
    return best && isServable(best, this.options.clock.now()) ? best : null;
  }

  apiKey(workspace: string): StoredApiKey | null {
    return this.slots.get(workspace)?.apiKey ?? null;
  }

  /**
   * The uids besides the daemon's own that may read the workspace: granted users, and the members
   * of granted groups as the account files say now (re-resolved when they change, so a user added
   * to a group later gets in without a restart).
   */
  allowedUids(workspace: string): ReadonlySet<number> {
    const slot = this.slots.get(workspace);
    if (!slot || slot.grants.length === 0) return NO_UIDS;
    const from = slot.grants.some((g) => g.kind === 'group') ? (this.options.accounts?.() ?? NO_ACCOUNTS) : null;
    let allowed = slot.allowed;
    if (!allowed || allowed.from !== from) {
      allowed = { from, uids: uidsAllowed(slot.grants, from ?? NO_ACCOUNTS) };
      slot.allowed = allowed;
    }
    return allowed.uids;
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
      hubClockOffsetMs: this.hubs.offsetMs(s.record.hubUrl),
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
   * A client asked and nothing fresh is held (#13). While a servable credential is held this is
   * the usual renewal, ahead of background work. With nothing servable the client is being
   * refused: a hub call starts at once whatever the backoff, at most one every few seconds per
   * workspace (shared by every waiting client), and never before the hub's Retry-After.
   */
  private renewOnRequest(slot: WorkspaceSlot): Promise<RenewOutcome> {
    const now = this.options.clock.now();
    const name = slot.record.name;
    if (slot.current && isServable(slot.current, now)) return this.renew(name, false, 'urgent');
    if (slot.inFlight) return slot.inFlight;
    if (mayStartOnRequest(slot, now) && !slot.keyRejected) return this.renew(name, true, 'urgent');
    return Promise.resolve({ kind: 'skipped', reason: 'backing_off', retryAt: slot.retryAt });
  }

  /**
   * Renew one workspace's S3 credentials. Concurrent callers share the call in flight (single
   * flight); while backing off after a failure nothing is sent unless `force` is set.
   * Background renewals are paced per hub; urgent ones (a client is waiting) go first.
   */
  renew(workspace: string, force = false, priority: CallPriority = 'background'): Promise<RenewOutcome> {
    const slot = this.slots.get(workspace);
    if (!slot) return Promise.resolve({ kind: 'skipped', reason: 'unknown_workspace' });
    if (this.stopped) return Promise.resolve({ kind: 'skipped', reason: 'stopped' });
    if (slot.inFlight) return slot.inFlight;
    const now = this.options.clock.now();
    forgetFutureFromClockJump(slot, now, this.options.backoff.maxMs);
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
    slot.inFlight = this.fetch(slot, apiKey, priority).finally(() => {
      slot.inFlight = null;
      slot.inFlightKeyId = null;
    });
    return slot.inFlight;
  }

  private async fetch(slot: WorkspaceSlot, apiKey: StoredApiKey, priority: CallPriority): Promise<RenewOutcome> {
    const { clock, store } = this.options;
    const name = slot.record.name;
    const hubUrl = slot.record.hubUrl;
    let fresh: S3Credentials;
    try {
      fresh = await this.hubs.run(hubUrl, priority, () => {
        slot.lastAttemptAt = clock.now();
        return this.options.hubFor(hubUrl).s3Credentials(name, apiKey.key, clock.now());
      });
    } catch (err) {
      const failure = describeFailure(err);
      // Abandoned because the daemon is stopping: told to the caller, not recorded as a failure.
      if (this.stopped) return { kind: 'failed', ...failure };
      slot.keyRejected = isKeyRejection(err);
      if (slot.keyRejected) {
        failure.message = `the API key was revoked or expired on the hub (${failure.message}); create a key in the EODH web UI and run "eodh-credd workspace set-key ${name}"`;
      }
      this.fail(slot, failure, retryAfterOf(err));
      return { kind: 'failed', ...failure };
    }
    if (this.slots.get(name) !== slot) return { kind: 'skipped', reason: 'removed' }; // removed while we waited
    // The account does not change between renewals: keep serving the known id until STS confirms.
    // Expiry is held by the more pessimistic clock: earlier by as much as the hub is ahead of us (#13).
    const expiresAt = localExpiry(fresh.expiresAt, this.hubs.aheadMs(hubUrl));
    const creds: S3Credentials = { ...fresh, expiresAt, accountId: slot.current?.accountId };
    slot.current = creds;
    slot.renewAt = renewalPoint(creds, this.options.random);
    slot.failures = 0;
    slot.retryAt = 0;
    slot.hubRetryAt = 0;
    slot.lastError = null;
    slot.keyRejected = false;
    this.schedule(slot);
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
        ...(expiresAt === fresh.expiresAt ? {} : { hubClockAheadMs: fresh.expiresAt - expiresAt }),
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

  private fail(slot: WorkspaceSlot, failure: { code: string; message: string }, retryAfterMs?: number): void {
    const { clock, random, backoff, store } = this.options;
    const now = clock.now();
    slot.failures += 1;
    slot.retryAt = nextAttemptAt({
      failures: slot.failures,
      now,
      backoff,
      random,
      held: slot.current,
      retryAfterMs,
      keyRejected: slot.keyRejected,
    });
    slot.hubRetryAt = retryAfterMs ? now + Math.min(retryAfterMs, RETRY_AFTER_CAP_MS) : 0;
    const delay = slot.retryAt - now;
    slot.lastError = { ...failure, at: now };
    this.schedule(slot);
    try {
      store.recordFailure(slot.record.id, failure.code, failure.message, now);
    } catch {
      // Status bookkeeping must never turn one failure into two.
    }
    this.log.warn(
      {
        workspace: slot.record.name,
        code: failure.code,
        failures: slot.failures,
        retryInMs: delay,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      },
      `renewal failed: ${failure.message}`,
    );
    this.options.events?.failed?.(slot.record, failure);
  }

  /**
   * Arm the workspace's timer for its next renewal: the jittered renewal point, or the retry
   * time after a failure (#13). Each workspace has its own, so none waits for a shared tick.
   */
  private schedule(slot: WorkspaceSlot): void {
    if (this.stopped) return;
    const name = slot.record.name;
    const at = Math.max(slot.current ? slot.renewAt : 0, slot.retryAt, this.options.clock.now());
    this.timers.set(name, at, () => {
      if (this.slots.get(name) !== slot) return;
      void this.renew(name).then(() => {
        // Skipped (still backing off after a clock jump) or removed meanwhile: make sure a timer is armed.
        if (this.slots.get(name) === slot && this.timers.at(name) === undefined) this.schedule(slot);
      });
    });
  }

  /** Renew every workspace that is due (or has nothing): the safety net behind the per-workspace timers. */
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

  /** Stop renewing: no timer fires again, calls still queued for a hub are dropped. */
  stop(): void {
    this.stopped = true;
    this.timers.clearAll();
    this.hubs.close();
  }

  /** Wait for every renewal in flight (graceful stop). */
  async settle(): Promise<void> {
    await Promise.all([...this.slots.values()].map((s) => s.inFlight));
  }
}

/**
 * A clock that jumped backwards must not strand a workspace in a wait longer than any we set: the
 * longest is a backoff (backoff.maxMs) or a Retry-After (10 min).
 */
function forgetFutureFromClockJump(slot: WorkspaceSlot, now: number, backoffMaxMs: number): void {
  const longest = Math.max(backoffMaxMs, RETRY_AFTER_CAP_MS) * 1.2;
  if (slot.retryAt - now > longest) slot.retryAt = now;
  if (slot.hubRetryAt - now > longest) slot.hubRetryAt = 0;
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
