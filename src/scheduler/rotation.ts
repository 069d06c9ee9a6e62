/**
 * API-key rotation, crash-safe. EODH keys live at most 30 days; before the active key runs out:
 *
 *   intent    mark "minting" in the database (its own commit)
 *   mint      POST …/me/tokens with the active key, named "<prefix> <date>"
 *   persist   store the new key sealed as `pending` and clear the mark, in one transaction
 *   verify    prove the pending key against the hub
 *   promote   pending → active, active → retiring, in one transaction
 *   revoke    DELETE the old key on the hub (with the new key), then forget it
 *
 * A kill at any point leaves a state the next run finishes: a set mark means a key may have been
 * minted and lost, so keys with our name prefix and an id we do not hold are revoked (orphans);
 * a `pending` key is verified and promoted (or dropped if the hub refuses it); `retiring` keys are
 * revoked. The only working key is never given up before its successor is active.
 *
 * If the hub refuses to mint with an API key (401/403: whether it allows this is not documented),
 * rotation needs the user: the state says so, status shows it, and the daemon keeps serving with
 * the current key until it expires.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { backoffDelay, daysLeft, durations, rotationDueAt } from '../core/policy.js';
import type { StoredApiKey } from '../store/store.js';
import type { WorkspaceSlot } from './broker.js';
import { describeFailure, type Hub, isKeyRejection, type SchedulerDeps } from './hub.js';

export type RotationStep = 'intent' | 'minted' | 'persisted' | 'verified' | 'promoted' | 'revoked';

export interface RotationSettings {
  readonly enabled: boolean;
  readonly rotateBeforeMs: number;
  readonly keyLifetimeDays: number;
}

export interface RotatorOptions extends SchedulerDeps {
  readonly settings: RotationSettings;
  /** Called after each step; the crash tests use it to kill the process at exact points. */
  readonly onStep?: ((step: RotationStep, workspace: string) => void) | undefined;
}

export type RotationOutcome = 'rotated' | 'recovered' | 'not_due' | 'needs_user' | 'failed';

const NEEDS_USER_RETRY_MS = durations.DAY;

export function keyNamePrefix(installId: string, host: string = hostname()): string {
  const safeHost = host.replace(/[^A-Za-z0-9.-]/g, '').slice(0, 40) || 'host';
  return `eodh-credd ${safeHost} ${installId}`;
}

export class KeyRotator {
  private readonly log: Logger;
  private readonly prefix: string;

  constructor(private readonly options: RotatorOptions) {
    this.log = options.logger.child({ module: 'rotation' });
    this.prefix = keyNamePrefix(options.store.installId());
  }

  /** Whether a crash left work behind, from what the database holds (read at load, not per sweep). */
  needsRecovery(slot: WorkspaceSlot): boolean {
    const { store } = this.options;
    return (
      store.status(slot.record.id).mintingSince !== null ||
      store.apiKeyStates(slot.record.id).some((state) => state !== 'active')
    );
  }

  isDue(slot: WorkspaceSlot, now: number): boolean {
    if (slot.rotation.recovery) return now >= slot.rotation.retryAt;
    const active = slot.apiKey;
    if (!this.options.settings.enabled || !active) return false;
    return now >= rotationDueAt(active, this.options.settings.rotateBeforeMs) && now >= slot.rotation.retryAt;
  }

  /** Finish interrupted work, then rotate if due (or forced). Never throws. */
  async run(slot: WorkspaceSlot, force = false): Promise<RotationOutcome> {
    const name = slot.record.name;
    const hub = this.options.hubFor(slot.record.hubUrl);
    try {
      const recovered = await this.recover(slot, hub);
      const active = slot.apiKey;
      if (!active) return 'failed';
      const due =
        force ||
        (this.options.settings.enabled &&
          this.options.clock.now() >= rotationDueAt(active, this.options.settings.rotateBeforeMs));
      if (!due) {
        this.succeeded(slot);
        return recovered ? 'recovered' : 'not_due';
      }
      return await this.rotate(slot, hub, active);
    } catch (err) {
      const failure = describeFailure(err);
      slot.rotation.failures += 1;
      const delay = backoffDelay(slot.rotation.failures, this.options.backoff, this.options.random);
      slot.rotation.retryAt = this.options.clock.now() + delay;
      slot.rotation.lastError = failure.message;
      this.log.warn(
        { workspace: name, code: failure.code, retryInMs: delay },
        `API key rotation failed: ${failure.message}`,
      );
      return 'failed';
    }
  }

  private async rotate(slot: WorkspaceSlot, hub: Hub, active: StoredApiKey): Promise<RotationOutcome> {
    const { store, clock, settings } = this.options;
    const ws = slot.record;
    const keyName = `${this.prefix} ${new Date(clock.now()).toISOString().slice(0, 19)}Z`;

    store.markMinting(ws.id, clock.now());
    this.step('intent', ws.name);
    let created: Awaited<ReturnType<Hub['createToken']>>;
    try {
      created = await hub.createToken(ws.name, active.key, { name: keyName, expiresDays: settings.keyLifetimeDays });
    } catch (err) {
      // Only a refusal proves nothing was minted. After a timeout or a lost answer the hub may
      // hold a new key we never saw: the mark stays, and the next run revokes such orphans.
      if (!isKeyRejection(err)) throw err;
      store.markMinting(ws.id, null);
      return this.needsUser(slot, describeFailure(err).message);
    }
    this.step('minted', ws.name);

    const expiresAt = created.expiresAt ?? clock.now() + settings.keyLifetimeDays * durations.DAY;
    const pending = store.insertPendingKey(ws.id, { tokenId: created.id, key: created.token, expiresAt }, keyName);
    this.step('persisted', ws.name);

    if (!(await this.promoteAfterVerifying(slot, hub, pending))) {
      throw new Error('the hub refused the newly minted key; it was revoked and rotation will be tried again');
    }
    await this.revokeRetiring(slot, hub);
    this.succeeded(slot);
    this.log.info(
      { workspace: ws.name, tokenId: created.id, expiresAt: new Date(expiresAt).toISOString() },
      'API key rotated',
    );
    return 'rotated';
  }

  /** Finish what an interrupted rotation left: orphans, a pending key, retiring keys. */
  private async recover(slot: WorkspaceSlot, hub: Hub): Promise<boolean> {
    const { store } = this.options;
    const ws = slot.record;
    if (!slot.rotation.recovery && !this.needsRecovery(slot)) return false;
    slot.rotation.recovery = true;
    const keys = store.apiKeys(ws.id);
    const pending = keys.find((k) => k.state === 'pending');
    if (pending) await this.promoteAfterVerifying(slot, hub, pending);
    if (store.status(ws.id).mintingSince !== null) await this.revokeOrphans(slot, hub);
    await this.revokeRetiring(slot, hub);
    slot.rotation.recovery = false;
    this.log.info({ workspace: ws.name }, 'finished an interrupted API key rotation');
    return true;
  }

  /** Verify a pending key and make it active. Returns false when the hub refuses it. */
  private async promoteAfterVerifying(slot: WorkspaceSlot, hub: Hub, pending: StoredApiKey): Promise<boolean> {
    const { store } = this.options;
    const ws = slot.record;
    try {
      await hub.listTokens(ws.name, pending.key);
    } catch (err) {
      if (!isKeyRejection(err)) throw err; // hub down: keep the pending key and try again later
      // The hub does not accept it (the "known recurring" 403, or revoked): worth nothing to us,
      // but it may still be alive on the hub, so revoke it with the active key before forgetting it.
      const active = slot.apiKey;
      if (active && pending.tokenId !== null) await hub.deleteToken(ws.name, active.key, pending.tokenId);
      store.deleteApiKey(pending.id);
      this.log.warn(
        { workspace: ws.name, tokenId: pending.tokenId },
        'revoked and dropped a new API key the hub refuses',
      );
      return false;
    }
    this.step('verified', ws.name);
    store.promotePendingKey(ws.id, pending.id);
    slot.apiKey = store.activeApiKey(ws.id);
    slot.keyRejected = false;
    this.step('promoted', ws.name);
    return true;
  }

  /** Revoke keys minted under our prefix that we do not hold (a crash between mint and persist). */
  private async revokeOrphans(slot: WorkspaceSlot, hub: Hub): Promise<void> {
    const { store } = this.options;
    const ws = slot.record;
    const active = slot.apiKey;
    if (!active) return;
    const held = new Set(store.apiKeys(ws.id).map((k) => k.tokenId));
    const listed = await hub.listTokens(ws.name, active.key);
    for (const token of listed) {
      if (!token.name?.startsWith(`${this.prefix} `) || held.has(token.id)) continue;
      await hub.deleteToken(ws.name, active.key, token.id);
      this.log.info({ workspace: ws.name, tokenId: token.id }, 'revoked an orphaned API key');
    }
    store.markMinting(ws.id, null);
  }

  private async revokeRetiring(slot: WorkspaceSlot, hub: Hub): Promise<void> {
    const { store } = this.options;
    const ws = slot.record;
    const active = slot.apiKey;
    if (!active) return;
    // A renewal still using the old key should finish before the key disappears under it.
    await slot.inFlight;
    for (const old of store.apiKeys(ws.id).filter((k) => k.state === 'retiring')) {
      if (old.tokenId !== null) {
        await hub.deleteToken(ws.name, active.key, old.tokenId);
      } else {
        this.log.info(
          { workspace: ws.name },
          'the replaced API key has no known token id; it stays valid on the hub until it expires',
        );
      }
      store.deleteApiKey(old.id);
      this.step('revoked', ws.name);
    }
  }

  private needsUser(slot: WorkspaceSlot, why: string): RotationOutcome {
    const { store, clock } = this.options;
    const ws = slot.record;
    const note = `the hub does not let this API key create its successor (${why}); create a key in the EODH web UI and run "eodh-credd workspace set-key ${ws.name}"`;
    store.setRotationState(ws.id, 'needs_user', note);
    slot.rotation.needsUser = true;
    slot.rotation.retryAt = clock.now() + NEEDS_USER_RETRY_MS;
    this.warnNeedsUser(slot, true);
    return 'needs_user';
  }

  /** From 7 days before expiry, warn once a day while rotation needs the user. */
  warnNeedsUser(slot: WorkspaceSlot, now_ = false): void {
    const now = this.options.clock.now();
    const expiresAt = slot.apiKey?.expiresAt;
    if (!slot.rotation.needsUser || expiresAt == null) return;
    const days = daysLeft(expiresAt, now);
    if (!now_ && (days > 7 || now - slot.rotation.warnedAt < durations.DAY)) return;
    slot.rotation.warnedAt = now;
    this.log.warn(
      { workspace: slot.record.name, daysLeft: days },
      `the API key of "${slot.record.name}" expires in ${days} days and cannot be rotated automatically: run "eodh-credd workspace set-key ${slot.record.name}" with a new key`,
    );
  }

  private succeeded(slot: WorkspaceSlot): void {
    const { store } = this.options;
    slot.rotation.failures = 0;
    slot.rotation.retryAt = 0;
    slot.rotation.lastError = null;
    if (slot.rotation.needsUser) {
      slot.rotation.needsUser = false;
      store.setRotationState(slot.record.id, 'ok', null);
    }
  }

  private step(step: RotationStep, workspace: string): void {
    this.options.onStep?.(step, workspace);
  }
}
