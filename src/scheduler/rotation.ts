/**
 * API-key rotation, crash-safe. EODH keys live at most 30 days; before the active key runs out:
 *
 *   intent    mark "minting" in the database (its own commit)
 *   mint      POST …/me/tokens with the active key, named "<prefix> <workspace> <date>"
 *   persist   store the new key sealed as `pending` and clear the mark, in one transaction
 *   verify    prove the pending key with s3-tokens (what the daemon needs it for)
 *   promote   pending → active, in one transaction; the old key becomes `retiring` if this
 *             installation minted it (or the user asked for their pasted key to go), else it is forgotten
 *   revoke    once no renewal uses the old key any more, DELETE it on the hub, then forget it
 *
 * Ownership (#11): an installation revokes only keys it minted, found by its install id in their
 * names and, in a token list, only among records of the same workspace (a list may span every
 * workspace of the user). A key the user pasted is never revoked unless they asked.
 *
 * A kill at any point leaves a state the next run finishes: a `pending` key is verified and
 * promoted (or revoked and dropped if the hub refuses it), `retiring` keys are revoked, and a set
 * minting mark means a key may have been minted and its answer lost. The hub may even finish a
 * mint after our client gave up, so the mark is cleared only by a token list taken once the hub
 * can no longer be working on it (`lateMintMs` after the mark); keys of ours in that list that we
 * do not hold are revoked as orphans. The only working key is never given up before its successor
 * is active.
 *
 * The token API is not documented for API keys: a mint refused with any final status makes the
 * workspace "rotation needs you" (the daemon keeps serving with the current key and asks the user
 * daily from 7 days out); a key that now gets 401 everywhere was revoked or expired on the hub.
 * What the hub allowed is recorded per workspace (capabilities) for `status` and `doctor`.
 *
 * This module owns the rotation state of each workspace; the broker owns the S3 side and is told
 * to switch keys through `KeyUser`, so neither imports the other.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { WorkspaceEvents } from '../core/events.js';
import type { Capability } from '../core/hub-facts.js';
import { backoffDelay, daysLeft, durations, rotationDueAt } from '../core/policy.js';
import { isOursToRevoke, type StoredApiKey, type WorkspaceRecord } from '../store/store.js';
import { describeFailure, type Hub, isRefusal, type SchedulerDeps, statusOf } from './hub.js';

export type RotationStep = 'intent' | 'minted' | 'persisted' | 'verified' | 'promoted' | 'revoked';

export interface RotationSettings {
  readonly enabled: boolean;
  readonly rotateBeforeMs: number;
  readonly keyLifetimeDays: number;
  /** How long after a mint request the hub might still create the key (its timeout plus a margin). */
  readonly lateMintMs: number;
}

/** What the rotator needs from whoever serves with the key (the broker). */
export interface KeyUser {
  /**
   * Switch to the workspace's active key in the database; resolves once no renewal that started
   * with an older key is still in flight, so the old key can be revoked safely.
   */
  useActiveKey(workspace: string): Promise<void>;
}

export interface RotatorOptions extends SchedulerDeps {
  readonly settings: RotationSettings;
  readonly keys: KeyUser;
  readonly events?: Pick<WorkspaceEvents, 'rotated'> | undefined;
  /**
   * Awaited after each step; the crash tests use it to kill the process at exact points, and the
   * invariant tests to check the hub and the database in between.
   */
  readonly onStep?: ((step: RotationStep, workspace: string) => void | Promise<void>) | undefined;
}

export type RotationOutcome =
  | 'rotated'
  | 'recovered'
  | 'not_due'
  | 'needs_user'
  | 'key_rejected'
  | 'waiting'
  | 'failed';

export interface RotationResult {
  readonly outcome: RotationOutcome;
  /** Why, in words, for everything but rotated/recovered/not_due. */
  readonly message?: string | undefined;
}

/** The rotator's own view of a workspace, for status. */
export interface RotationView {
  readonly recovering: boolean;
  readonly retryAt: number | null;
  readonly failures: number;
  readonly lastError: string | null;
  readonly inFlight: boolean;
}

/** A mint refusal is tried again this much later: the hub's policy may have changed. */
const NEEDS_USER_RETRY_MS = durations.DAY;
/** Never rotate a key this installation minted sooner than this after minting it (#11: no loops). */
export const MIN_ROTATION_INTERVAL_MS = durations.HOUR;

interface RotationState {
  /** A crash or an unfinished rotation left work behind (pending/retiring keys, a minting mark). */
  recovery: boolean;
  retryAt: number;
  failures: number;
  lastError: string | null;
  warnedAt: number;
  /** The last due-time note logged, so a short-lived key is explained once, not every sweep. */
  notedDueAt: number;
  inFlight: Promise<RotationResult> | null;
}

export function keyNamePrefix(installId: string, host: string = hostname()): string {
  const safeHost = host.replace(/[^A-Za-z0-9.-]/g, '').slice(0, 30) || 'host';
  return `eodh-credd ${safeHost} ${installId}`;
}

/** The name this installation gives a key it mints for `workspace` (at most 128 characters). */
export function mintedKeyName(prefix: string, workspace: string, now: number): string {
  return `${prefix} ${workspace} ${new Date(now).toISOString().slice(0, 19)}Z`;
}

/**
 * When a key is due for rotation. For a key this installation minted, whose granted life it knows:
 * if the hub granted less than `rotateBeforeMs` (or about that), rotate at half the granted life
 * instead, so a short-lived key is not rotated at every sweep, and never within an hour of minting.
 */
export function keyDueAt(
  key: Pick<StoredApiKey, 'expiresAt' | 'storedAt' | 'name'>,
  rotateBeforeMs: number,
): { at: number; halfLife: boolean } {
  if (key.expiresAt === null || key.name === null) return { at: rotationDueAt(key, rotateBeforeMs), halfLife: false };
  const granted = key.expiresAt - key.storedAt;
  const halfLife = rotateBeforeMs >= granted / 2;
  const at = halfLife ? key.storedAt + granted / 2 : key.expiresAt - rotateBeforeMs;
  return { at: Math.max(at, key.storedAt + MIN_ROTATION_INTERVAL_MS), halfLife };
}

export class KeyRotator {
  private readonly log: Logger;
  readonly prefix: string;
  private readonly states = new Map<string, RotationState>();

  constructor(private readonly options: RotatorOptions) {
    this.log = options.logger.child({ module: 'rotation' });
    this.prefix = keyNamePrefix(options.store.installId());
  }

  // ---- state ---------------------------------------------------------------------------------

  private stateOf(ws: WorkspaceRecord): RotationState {
    let state = this.states.get(ws.id);
    if (!state) {
      state = {
        recovery: this.leftWork(ws),
        retryAt: 0,
        failures: 0,
        lastError: null,
        warnedAt: 0,
        notedDueAt: 0,
        inFlight: null,
      };
      this.states.set(ws.id, state);
    }
    return state;
  }

  /** Whether the database holds unfinished rotation work for the workspace. */
  private leftWork(ws: WorkspaceRecord): boolean {
    const { store } = this.options;
    return store.status(ws.id).mintingSince !== null || store.apiKeyStates(ws.id).some((state) => state !== 'active');
  }

  /** Bring the per-workspace state in line with the database (at start and after CLI changes). */
  sync(workspaces: readonly WorkspaceRecord[]): void {
    const present = new Set(workspaces.map((w) => w.id));
    for (const id of this.states.keys()) if (!present.has(id)) this.states.delete(id);
    for (const ws of workspaces) {
      const state = this.stateOf(ws);
      if (!state.inFlight && this.leftWork(ws)) state.recovery = true;
    }
  }

  view(ws: WorkspaceRecord): RotationView {
    const state = this.stateOf(ws);
    return {
      recovering: state.recovery,
      retryAt: state.retryAt || null,
      failures: state.failures,
      lastError: state.lastError,
      inFlight: state.inFlight !== null,
    };
  }

  isDue(ws: WorkspaceRecord, now: number): boolean {
    const state = this.stateOf(ws);
    if (now < state.retryAt) return false;
    if (state.recovery) return true;
    const active = this.options.store.activeApiKey(ws.id);
    if (!this.options.settings.enabled || !active) return false;
    return now >= this.dueAt(ws, active, state);
  }

  private dueAt(ws: WorkspaceRecord, active: StoredApiKey, state: RotationState): number {
    const due = keyDueAt(active, this.options.settings.rotateBeforeMs);
    if (due.halfLife && state.notedDueAt !== due.at) {
      state.notedDueAt = due.at;
      this.log.info(
        { workspace: ws.name, dueAt: new Date(due.at).toISOString() },
        'the API key lives less than twice rotate_before_days: it will be rotated at about half its life instead',
      );
    }
    return due.at;
  }

  /** Rotate every workspace that is due and remind about those that need the user; never throws. */
  sweep(workspaces: readonly WorkspaceRecord[]): void {
    const now = this.options.clock.now();
    for (const ws of workspaces) {
      try {
        this.warnNeedsUser(ws);
        if (!this.stateOf(ws).inFlight && this.isDue(ws, now)) void this.rotate(ws);
      } catch (err) {
        this.log.error({ workspace: ws.name, err: describeFailure(err) }, 'rotation check failed');
      }
    }
  }

  /** Finish interrupted work, then rotate if due (or forced); one run per workspace at a time. */
  rotate(ws: WorkspaceRecord, force = false): Promise<RotationResult> {
    const state = this.stateOf(ws);
    if (state.inFlight) return state.inFlight;
    state.inFlight = this.run(ws, state, force).finally(() => {
      state.inFlight = null;
    });
    return state.inFlight;
  }

  /** Wait for every rotation in flight (graceful stop). */
  async settle(): Promise<void> {
    await Promise.all([...this.states.values()].map((s) => s.inFlight));
  }

  // ---- the work ------------------------------------------------------------------------------

  private async run(ws: WorkspaceRecord, state: RotationState, force: boolean): Promise<RotationResult> {
    const { store, clock, settings } = this.options;
    const hub = this.options.hubFor(ws.hubUrl);
    try {
      const recovered = await this.recover(ws, hub, state);
      if (recovered === 'waiting') {
        const message = `waiting until ${new Date(state.retryAt).toISOString()} to look for a key the hub may have minted late`;
        state.lastError = null;
        return { outcome: 'waiting', message };
      }
      const active = store.activeApiKey(ws.id);
      if (!active) return this.failed(ws, state, new Error('the workspace has no active API key'));
      const now = clock.now();
      const due = force || (settings.enabled && now >= this.dueAt(ws, active, state));
      if (!due) {
        this.succeeded(ws, state);
        return { outcome: recovered === 'recovered' ? 'recovered' : 'not_due' };
      }
      return await this.mintAndSwitch(ws, hub, active, state);
    } catch (err) {
      return this.failed(ws, state, err);
    }
  }

  private failed(ws: WorkspaceRecord, state: RotationState, err: unknown): RotationResult {
    const failure = describeFailure(err);
    state.failures += 1;
    const delay = backoffDelay(state.failures, this.options.backoff, this.options.random);
    state.retryAt = this.options.clock.now() + delay;
    state.lastError = failure.message;
    this.log.warn(
      { workspace: ws.name, code: failure.code, retryInMs: delay },
      `API key rotation failed: ${failure.message}`,
    );
    return { outcome: 'failed', message: failure.message };
  }

  private async mintAndSwitch(
    ws: WorkspaceRecord,
    hub: Hub,
    active: StoredApiKey,
    state: RotationState,
  ): Promise<RotationResult> {
    const { store, clock, settings } = this.options;
    const keyName = mintedKeyName(this.prefix, ws.name, clock.now());

    store.markMinting(ws.id, clock.now());
    await this.step('intent', ws.name);
    let created: Awaited<ReturnType<Hub['createToken']>>;
    try {
      created = await hub.createToken(ws.name, active.key, { name: keyName, expiresDays: settings.keyLifetimeDays });
    } catch (err) {
      // Only a refusal proves nothing was minted. After a timeout or a lost answer the hub may
      // hold (or still create) a key we never saw: the mark stays, and recovery revokes it later.
      if (!isRefusal(err)) throw err;
      store.markMinting(ws.id, null);
      return this.mintRefused(ws, hub, active, state, err);
    }
    this.learned(ws, 'mint', 'allowed');
    await this.step('minted', ws.name);

    const asked = settings.keyLifetimeDays * durations.DAY;
    const expiresAt = created.expiresAt ?? clock.now() + asked;
    if (created.expiresAt != null && created.expiresAt - clock.now() < asked - durations.HOUR) {
      this.log.info(
        { workspace: ws.name, days: Math.round(((created.expiresAt - clock.now()) / durations.DAY) * 10) / 10 },
        'the hub granted the new API key a shorter life than asked',
      );
    }
    const pending = store.insertPendingKey(ws.id, { tokenId: created.id, key: created.token, expiresAt }, keyName);
    await this.step('persisted', ws.name);

    if (!(await this.promoteAfterVerifying(ws, hub, pending))) {
      throw new Error('the hub refused the newly minted key; it was revoked and rotation will be tried again');
    }
    await this.revokeRetiring(ws, hub);
    this.succeeded(ws, state);
    // A key of ours was minted after all (the hub's policy changed): the user is not needed.
    if (store.status(ws.id).rotationState === 'needs_user') store.setRotationState(ws.id, 'ok', null);
    this.log.info(
      { workspace: ws.name, tokenId: created.id, expiresAt: new Date(expiresAt).toISOString() },
      'API key rotated',
    );
    return { outcome: 'rotated' };
  }

  /**
   * The hub said no to the mint. If it says no to the key everywhere (s3-tokens too), the key was
   * revoked or expired on the hub; otherwise the hub does not let this key mint its successor.
   */
  private async mintRefused(
    ws: WorkspaceRecord,
    hub: Hub,
    active: StoredApiKey,
    state: RotationState,
    err: unknown,
  ): Promise<RotationResult> {
    const status = statusOf(err);
    if (status === 401 || status === 403) {
      try {
        await hub.s3Credentials(ws.name, active.key, this.options.clock.now());
      } catch (probe) {
        if (isRefusal(probe) && (statusOf(probe) === 401 || statusOf(probe) === 403)) {
          const message = `the API key was revoked or expired on the hub (${status}); create a key in the EODH web UI and run "eodh-credd workspace set-key ${ws.name}"`;
          state.failures += 1;
          state.retryAt = this.options.clock.now() + NEEDS_USER_RETRY_MS;
          state.lastError = message;
          this.log.warn({ workspace: ws.name, status }, message);
          return { outcome: 'key_rejected', message };
        }
        // Not a clear answer (hub down): judge the mint refusal on its own.
      }
    }
    this.learned(ws, 'mint', 'refused', status);
    return this.needsUser(ws, state, `the hub answered ${status ?? 'no'} to minting`);
  }

  /** Finish what an interrupted rotation left: a pending key, orphans, retiring keys. */
  private async recover(
    ws: WorkspaceRecord,
    hub: Hub,
    state: RotationState,
  ): Promise<'none' | 'recovered' | 'waiting'> {
    const { store, clock, settings } = this.options;
    if (!state.recovery && !this.leftWork(ws)) return 'none';
    state.recovery = true;
    const pending = store.apiKeys(ws.id).find((k) => k.state === 'pending');
    if (pending) await this.promoteAfterVerifying(ws, hub, pending);
    const mark = store.status(ws.id).mintingSince;
    if (mark !== null) {
      const settled = mark + settings.lateMintMs;
      if (clock.now() < settled) {
        // The hub could still be creating the key we asked for: look once it cannot.
        state.retryAt = settled;
        return 'waiting';
      }
      await this.revokeOrphans(ws, hub, mark);
    }
    await this.revokeRetiring(ws, hub);
    state.recovery = this.leftWork(ws);
    if (state.recovery) return 'waiting';
    this.log.info({ workspace: ws.name }, 'finished an interrupted API key rotation');
    return 'recovered';
  }

  /** Prove a pending key with s3-tokens and make it active. Returns false when the hub refuses it. */
  private async promoteAfterVerifying(ws: WorkspaceRecord, hub: Hub, pending: StoredApiKey): Promise<boolean> {
    const { store, clock } = this.options;
    try {
      await hub.s3Credentials(ws.name, pending.key, clock.now());
    } catch (err) {
      if (!isRefusal(err)) throw err; // hub down: keep the pending key and try again later
      // The hub does not accept it: worth nothing to us, but it may still be alive on the hub, so
      // revoke it (it is ours) before forgetting it.
      const active = store.activeApiKey(ws.id);
      if (pending.tokenId !== null) {
        await this.revoke(ws, hub, active?.key ?? pending.key, pending.tokenId, 'a new API key the hub refuses');
      }
      store.deleteApiKey(pending.id);
      this.log.warn({ workspace: ws.name, tokenId: pending.tokenId }, 'dropped a new API key the hub refuses');
      return false;
    }
    await this.step('verified', ws.name);
    store.promotePendingKey(ws.id, pending.id);
    await this.step('promoted', ws.name);
    await this.options.keys.useActiveKey(ws.name);
    this.options.events?.rotated?.(ws, { tokenId: pending.tokenId, expiresAt: pending.expiresAt });
    return true;
  }

  /**
   * Revoke keys minted by this installation for this workspace that we do not hold (a crash or a
   * lost answer between mint and persist). Records of other workspaces and names of other
   * installations are never touched. `mark` is the minting mark this list settles.
   */
  private async revokeOrphans(ws: WorkspaceRecord, hub: Hub, mark: number): Promise<void> {
    const { store } = this.options;
    const active = store.activeApiKey(ws.id);
    if (!active) return;
    const held = store.heldTokenIds();
    let listing: Awaited<ReturnType<Hub['listTokens']>>;
    try {
      listing = await hub.listTokens(ws.name, active.key);
    } catch (err) {
      if (!isRefusal(err)) throw err;
      this.learned(ws, 'list', 'refused', statusOf(err));
      this.log.warn(
        { workspace: ws.name, status: statusOf(err) },
        'the hub does not let this API key list keys: a key it minted after an unanswered request cannot be found, and stays valid on the hub until it expires',
      );
      store.clearMinting(ws.id, mark);
      return;
    }
    this.learned(ws, 'list', 'allowed');
    if (listing.unreadable > 0) {
      this.log.warn({ workspace: ws.name, records: listing.unreadable }, 'skipped token records without a usable id');
    }
    const ours = `${this.prefix} ${ws.name} `;
    for (const token of listing.tokens) {
      if (token.workspace != null && token.workspace !== ws.name) continue;
      if (!token.name?.startsWith(ours) || held.has(token.id)) continue;
      if (await this.revoke(ws, hub, active.key, token.id, 'an orphaned API key')) {
        this.log.info({ workspace: ws.name, tokenId: token.id }, 'revoked an orphaned API key');
      }
    }
    store.clearMinting(ws.id, mark);
  }

  private async revokeRetiring(ws: WorkspaceRecord, hub: Hub): Promise<void> {
    const { store } = this.options;
    const retiring = store.apiKeys(ws.id).filter((k) => k.state === 'retiring');
    if (retiring.length === 0) return;
    const active = store.activeApiKey(ws.id);
    if (!active) return;
    // A renewal still using the old key must finish before the key disappears under it (#17).
    await this.options.keys.useActiveKey(ws.name);
    for (const old of retiring) {
      if (old.tokenId !== null && isOursToRevoke(old)) {
        await this.revoke(ws, hub, active.key, old.tokenId, 'the replaced API key');
      } else {
        this.log.info(
          { workspace: ws.name },
          'the replaced API key has no known token id; it stays valid on the hub until it expires',
        );
      }
      store.deleteApiKey(old.id);
      await this.step('revoked', ws.name);
    }
  }

  /** DELETE a key on the hub; false when the hub refuses (then it stays valid until it expires). */
  private async revoke(
    ws: WorkspaceRecord,
    hub: Hub,
    withKey: string,
    tokenId: string,
    what: string,
  ): Promise<boolean> {
    try {
      await hub.deleteToken(ws.name, withKey, tokenId);
    } catch (err) {
      if (!isRefusal(err)) throw err;
      this.learned(ws, 'delete', 'refused', statusOf(err));
      this.log.warn(
        { workspace: ws.name, tokenId, status: statusOf(err) },
        `the hub does not let this API key revoke ${what}; it stays valid on the hub until it expires`,
      );
      return false;
    }
    this.learned(ws, 'delete', 'allowed');
    return true;
  }

  private learned(ws: WorkspaceRecord, name: Capability, state: 'allowed' | 'refused', status?: number): void {
    try {
      this.options.store.setCapability(ws.id, name, {
        state,
        at: this.options.clock.now(),
        ...(status === undefined ? {} : { status }),
      });
    } catch (err) {
      this.log.debug({ workspace: ws.name, err: describeFailure(err) }, 'could not record a capability');
    }
  }

  private needsUser(ws: WorkspaceRecord, state: RotationState, why: string): RotationResult {
    const { store, clock } = this.options;
    const note = `rotation needs you: ${why}. Create a key in the EODH web UI and run "eodh-credd workspace set-key ${ws.name}" before the current one expires`;
    const already = store.status(ws.id).rotationState === 'needs_user';
    store.setRotationState(ws.id, 'needs_user', note);
    state.retryAt = clock.now() + NEEDS_USER_RETRY_MS;
    state.lastError = null;
    state.failures = 0;
    // Said at once the first time; after that, the daily reminder (warnNeedsUser) says it.
    this.warnNeedsUser(ws, !already);
    return { outcome: 'needs_user', message: note };
  }

  /** From 7 days before expiry, warn once a day while rotation needs the user. */
  warnNeedsUser(ws: WorkspaceRecord, always = false): void {
    const { store, clock } = this.options;
    if (store.status(ws.id).rotationState !== 'needs_user') return;
    const expiresAt = store.activeApiKey(ws.id)?.expiresAt;
    const state = this.stateOf(ws);
    const now = clock.now();
    if (expiresAt == null) {
      if (always) this.log.warn({ workspace: ws.name }, `API key rotation of "${ws.name}" needs you`);
      return;
    }
    const days = daysLeft(expiresAt, now);
    if (!always && (days > 7 || now - state.warnedAt < durations.DAY)) return;
    state.warnedAt = now;
    this.log.warn(
      { workspace: ws.name, daysLeft: days },
      `the API key of "${ws.name}" expires in ${days} days and cannot be rotated automatically: run "eodh-credd workspace set-key ${ws.name}" with a new key`,
    );
  }

  private succeeded(_ws: WorkspaceRecord, state: RotationState): void {
    state.failures = 0;
    state.retryAt = 0;
    state.lastError = null;
  }

  private async step(step: RotationStep, workspace: string): Promise<void> {
    await this.options.onStep?.(step, workspace);
  }
}
