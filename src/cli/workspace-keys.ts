/**
 * The API-key side of `workspace add`, `set-key` and `remove` (#11):
 *
 * - prove a pasted key with what the daemon needs (s3-tokens), and learn what else the hub lets it
 *   do (list keys) and where the workspace's files live (GET /api/workspaces/{ws}), neither of
 *   which is required;
 * - with rotation enabled, mint this installation's own key at once and use it from then on, so
 *   several machines (or a machine and a notebook) sharing one pasted key never cut each other
 *   off, and the user learns at once whether automatic rotation works. The pasted key is revoked
 *   only when the user asks (--revoke-pasted-key);
 * - on removal, revoke the keys this installation minted, never the pasted one.
 *
 * The mint follows the rotation protocol (src/scheduler/rotation.ts): the minting mark is set in
 * the same transaction that stores the workspace, so if this process dies or the hub's answer is
 * lost, the daemon later finds the key the hub minted and revokes it.
 */

import { hubClientOptions } from '../config/hub-client.js';
import type { Config } from '../config/load.js';
import { EXIT, UserError } from '../core/errors.js';
import type { CapabilityFact } from '../core/hub-facts.js';
import type { S3Credentials } from '../core/types.js';
import { isRefusal, statusOf } from '../scheduler/hub.js';
import { keyNamePrefix, mintedKeyName } from '../scheduler/rotation.js';
import { isOursToRevoke, type Store, type WorkspaceRecord } from '../store/store.js';
import { HubClient } from '../upstream/client.js';

export function cliHub(config: Config, hubUrl: string): HubClient {
  return new HubClient(hubUrl, hubClientOptions(config));
}

export interface ProvedKey {
  readonly s3: S3Credentials;
  /** From the token list when --token-id was given and the list was available. */
  readonly keyExpiresAt: number | null;
  /** Whether the hub let the key list keys; undefined when it could not be asked (hub down). */
  readonly list: CapabilityFact | undefined;
  readonly storage: { bucket: string | null; prefix: string | null } | undefined;
}

/**
 * Prove an API key against the hub before anything is stored: s3-tokens must work. The token list
 * is asked too (it tells the key's expiry when its token id is given) but a refusal is no reason to
 * fail: whether an API key may list keys is not documented. `--token-id` is checked against the
 * list only when the list is available.
 */
export async function proveKey(
  config: Config,
  input: { name: string; hubUrl: string; tokenId: string | null; apiKey: string },
): Promise<ProvedKey> {
  const hub = cliHub(config, input.hubUrl);
  let s3: S3Credentials;
  try {
    s3 = await hub.s3Credentials(input.name, input.apiKey, Date.now());
  } catch (err) {
    if (isRefusal(err) && (statusOf(err) === 401 || statusOf(err) === 403)) {
      throw new UserError(
        `The hub refused this API key for workspace "${input.name}" (${(err as Error).message}); nothing was stored.`,
        EXIT.NOPERM,
      );
    }
    throw new UserError(
      `Could not prove the key against ${input.hubUrl}: ${(err as Error).message}; nothing was stored.`,
      EXIT.UNAVAILABLE,
    );
  }
  let keyExpiresAt: number | null = null;
  let list: CapabilityFact | undefined;
  try {
    const { tokens } = await hub.listTokens(input.name, input.apiKey);
    list = { state: 'allowed', at: Date.now() };
    if (input.tokenId !== null) {
      const mine = tokens.find((t) => t.id === input.tokenId && (t.workspace == null || t.workspace === input.name));
      if (!mine)
        throw new UserError(
          `The hub lists no token with id "${input.tokenId}" in workspace "${input.name}"; check --token-id.`,
          EXIT.DATAERR,
        );
      keyExpiresAt = mine.expiresAt;
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    if (isRefusal(err)) list = { state: 'refused', status: statusOf(err), at: Date.now() };
  }
  let storage: ProvedKey['storage'];
  try {
    storage = await hub.workspaceInfo(input.name, input.apiKey);
  } catch {
    // Best effort: the bucket and prefix are shown when known, never a reason to fail.
  }
  return { s3, keyExpiresAt, list, storage };
}

/** Record what proving the key taught: list ability and storage facts. */
export function recordProof(store: Store, record: WorkspaceRecord, proof: ProvedKey): void {
  if (proof.list) store.setCapability(record.id, 'list', proof.list);
  if (proof.storage) store.setStorageFacts(record.id, proof.storage.bucket, proof.storage.prefix);
}

export type OwnKeyResult =
  | { readonly kind: 'minted'; readonly tokenId: string; readonly expiresAt: number; readonly pastedRevoked: boolean }
  | { readonly kind: 'refused'; readonly status: number | undefined }
  /** The hub did not answer clearly; the daemon finishes (or cleans up) later. */
  | { readonly kind: 'unsettled'; readonly message: string };

/**
 * Mint this installation's own key with the pasted one (the workspace must already hold the pasted
 * key as active, with the minting mark set at `mark`), prove it, and switch to it.
 */
export async function mintOwnKey(
  config: Config,
  store: Store,
  record: WorkspaceRecord,
  pasted: { key: string; tokenId: string | null },
  mark: number,
  options: { revokePastedNow: boolean },
): Promise<OwnKeyResult> {
  const hub = cliHub(config, record.hubUrl);
  const name = mintedKeyName(keyNamePrefix(store.installId()), record.name, Date.now());
  let created: Awaited<ReturnType<HubClient['createToken']>>;
  try {
    created = await hub.createToken(record.name, pasted.key, { name, expiresDays: config.rotation.key_lifetime_days });
  } catch (err) {
    if (!isRefusal(err)) {
      // The hub may have minted it anyway: the mark stays, and the daemon looks for it later.
      return { kind: 'unsettled', message: (err as Error).message };
    }
    store.clearMinting(record.id, mark);
    const status = statusOf(err);
    store.setCapability(record.id, 'mint', { state: 'refused', status, at: Date.now() });
    store.setRotationState(
      record.id,
      'needs_user',
      `rotation needs you: the hub answered ${status ?? 'no'} to minting a key with this API key. Create a key in the EODH web UI and run "eodh-credd workspace set-key ${record.name}" before the current one expires`,
    );
    return { kind: 'refused', status };
  }
  store.setCapability(record.id, 'mint', { state: 'allowed', at: Date.now() });
  const expiresAt = created.expiresAt ?? Date.now() + config.rotation.key_lifetime_days * 86_400_000;
  const pending = store.insertPendingKey(record.id, { tokenId: created.id, key: created.token, expiresAt }, name);
  let s3: S3Credentials;
  try {
    s3 = await hub.s3Credentials(record.name, created.token, Date.now());
  } catch (err) {
    if (!isRefusal(err)) return { kind: 'unsettled', message: (err as Error).message }; // the daemon verifies it later
    // The hub will not take its own new key: revoke it (it is ours) and keep the pasted one.
    await hub.deleteToken(record.name, pasted.key, created.id).catch(() => undefined);
    store.deleteApiKey(pending.id);
    return { kind: 'unsettled', message: `the hub refused the key it had just minted (${(err as Error).message})` };
  }
  store.transaction(() => {
    store.promotePendingKey(record.id, pending.id);
    store.saveS3(record.id, s3);
  });
  let pastedRevoked = false;
  const retiring = store.apiKeys(record.id).filter((k) => k.state === 'retiring');
  if (options.revokePastedNow) {
    for (const old of retiring) {
      if (old.tokenId === null || !isOursToRevoke(old)) continue;
      try {
        await hub.deleteToken(record.name, created.token, old.tokenId);
        store.setCapability(record.id, 'delete', { state: 'allowed', at: Date.now() });
        store.deleteApiKey(old.id);
        pastedRevoked = true;
      } catch (err) {
        if (isRefusal(err)) {
          store.setCapability(record.id, 'delete', { state: 'refused', status: statusOf(err), at: Date.now() });
          store.deleteApiKey(old.id);
        }
        // Hub down: the key stays retiring and the daemon revokes it.
      }
    }
  }
  return { kind: 'minted', tokenId: created.id, expiresAt, pastedRevoked };
}

export interface RevokeReport {
  readonly revoked: string[];
  readonly failed: Array<{ tokenId: string; message: string }>;
}

/**
 * Revoke on the hub every key of the workspace this installation minted (the active key last, with
 * itself). A pasted key is never revoked here.
 */
export async function revokeMintedKeys(config: Config, store: Store, record: WorkspaceRecord): Promise<RevokeReport> {
  const hub = cliHub(config, record.hubUrl);
  const keys = store.apiKeys(record.id);
  const active = keys.find((k) => k.state === 'active');
  const minted = keys.filter((k) => k.name !== null && k.tokenId !== null);
  // Others first, while the active key still works; the active one revokes itself last.
  minted.sort((a, b) => Number(a.state === 'active') - Number(b.state === 'active'));
  const report: RevokeReport = { revoked: [], failed: [] };
  for (const key of minted) {
    const withKey = key.state === 'active' || !active ? key.key : active.key;
    try {
      await hub.deleteToken(record.name, withKey, key.tokenId!);
      report.revoked.push(key.tokenId!);
    } catch (err) {
      report.failed.push({ tokenId: key.tokenId!, message: (err as Error).message });
    }
  }
  return report;
}
