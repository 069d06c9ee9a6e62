/**
 * `eodh-credd workspace add|list|remove|set-key|sink`. Adding proves the key against the hub
 * (s3-tokens must work) before anything is stored: a key that does not work is never saved. The
 * key handling (own key, revocation) is in workspace-keys.ts.
 */

import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/load.js';
import { clientTokenFile } from '../config/paths.js';
import { describeGrant } from '../core/access.js';
import { EXIT, UserError } from '../core/errors.js';
import { daysLeft, isServable } from '../core/policy.js';
import { rfc3339 } from '../core/time.js';
import type { S3Credentials } from '../core/types.js';
import {
  defaultCredentialsFile,
  deleteProfile,
  profileName,
  sinkTarget,
  writeProfile,
} from '../sinks/aws-credentials-file.js';
import { newClientToken, writeClientTokenFile } from '../store/client-tokens.js';
import type { Store, WorkspaceRecord } from '../store/store.js';
import { assertHubUrlAllowed } from '../upstream/url.js';
import { type CliContext, configOf, print, stringOption } from './context.js';
import { runtimeInfo } from './daemon-client.js';
import { assertWorkspaceName, unknownWorkspace } from './names.js';
import { openStore } from './open-store.js';
import { withProgress } from './progress.js';
import { readSecret } from './prompt.js';
import {
  mintOwnKey,
  type OwnKeyResult,
  type ProvedKey,
  proveKey,
  type RevokeReport,
  recordProof,
  revokeMintedKeys,
} from './workspace-keys.js';

export { assertWorkspaceName } from './names.js';
export { proveKey } from './workspace-keys.js';

export const DEFAULT_HUB = 'https://eodatahub.org.uk';
export const DEFAULT_REGION = 'eu-west-2';

export interface AddWorkspaceInput {
  readonly name: string;
  readonly hubUrl: string;
  readonly tokenId: string | null;
  readonly region: string;
  readonly apiKey: string;
  /** Revoke the pasted key once this installation's own key replaces it (#11). */
  readonly revokePastedKey?: boolean;
}

export interface AddedWorkspace {
  readonly record: WorkspaceRecord;
  readonly tokenFile: string;
  readonly keyExpiresAt: number | null;
  readonly s3: S3Credentials;
  /** What the hub answered to listing keys (undefined: it could not be asked). */
  readonly listAllowed: 'allowed' | 'refused' | undefined;
  /** This installation's own key (null when rotation is off). */
  readonly ownKey: OwnKeyResult | null;
}

/** A workspace's record, or a usage error naming the configured workspaces that look like it. */
export function requireWorkspace(store: Store, name: string, hint = ''): WorkspaceRecord {
  const record = store.getWorkspace(name);
  if (record) return record;
  throw unknownWorkspace(
    name,
    store.listWorkspaces().map((w) => w.name),
    hint,
  );
}

/** A workspace's record, or a usage error that says how to add it. */
export function readWorkspace(config: Config, env: CliContext['env'], name: string): WorkspaceRecord {
  const store = openStore(config, env);
  try {
    return requireWorkspace(store, name, ` Add it with "eodh-credd workspace add ${name}".`);
  } finally {
    store.close();
  }
}

/** Where progress goes (a terminal's stderr). */
type Progress = Pick<CliContext, 'stderr' | 'env'>;

/** proveKey with a progress line on a terminal, bounded by the longest the proof can take. */
function proveWithProgress(
  config: Config,
  input: Pick<AddWorkspaceInput, 'name' | 'hubUrl' | 'tokenId' | 'apiKey'>,
  progress?: Progress,
): Promise<ProvedKey> {
  const work = proveKey(config, input);
  return progress ? withProgress(progress, `Checking the key with ${input.hubUrl}`, proofLimitMs(config), work) : work;
}

/** The backoff of the hub client the CLI uses (cliHub in workspace-keys.ts). */
const PROOF_BACKOFF = { initialMs: 500, maxMs: 5_000 };

/**
 * The longest a proof can take: three hub calls (s3-tokens, the token list, the workspace's
 * storage), each with its retries and the backoff between them.
 */
export function proofLimitMs(config: Config): number {
  let backoff = 0;
  for (let i = 0, delay = PROOF_BACKOFF.initialMs; i < config.hub.retries; i++, delay *= 2)
    backoff += Math.min(delay, PROOF_BACKOFF.maxMs);
  return 3 * (config.hub.timeout_ms * (config.hub.retries + 1) + backoff);
}

/** Everything `workspace add` can check before asking for the key: a pasted key is never wasted. */
export function assertCanAdd(store: Store, name: string, hubUrl: string): void {
  assertHubUrlAllowed(hubUrl);
  if (store.getWorkspace(name)) {
    throw new UserError(`Workspace "${name}" is already configured; remove it first to replace it.`, EXIT.USAGE);
  }
}

export async function addWorkspace(
  config: Config,
  env: CliContext['env'],
  input: AddWorkspaceInput,
  progress?: Progress,
): Promise<AddedWorkspace> {
  const revokePasted = input.revokePastedKey === true;
  if (revokePasted) assertCanRevokePasted(config, input.tokenId);
  const store = openStore(config, env);
  try {
    assertCanAdd(store, input.name, input.hubUrl);
    const proof = await proveWithProgress(config, input, progress);
    const client = newClientToken();
    const tokenFile = writeClientTokenFile(config.paths, input.name, client.token);
    // With rotation on, this installation mints its own key next: the mark goes in with the workspace.
    const mark = config.rotation.enabled ? Date.now() : null;
    let record: WorkspaceRecord;
    try {
      record = store.addWorkspace({
        name: input.name,
        hubUrl: input.hubUrl,
        region: input.region,
        clientTokenId: client.id,
        clientTokenHash: client.hash,
        apiKey: {
          tokenId: input.tokenId,
          key: input.apiKey,
          expiresAt: proof.keyExpiresAt,
          revokeWhenReplaced: revokePasted,
        },
        s3: proof.s3,
        mintingSince: mark,
      });
    } catch (err) {
      rmSync(tokenFile, { force: true });
      throw err;
    }
    recordProof(store, record, proof);
    const ownKey =
      mark === null
        ? null
        : await mintOwnKey(config, store, record, { key: input.apiKey, tokenId: input.tokenId }, mark, {
            revokePastedNow: revokePasted && !runtimeInfo(config),
          });
    return {
      record: store.getWorkspace(input.name) ?? record,
      tokenFile,
      keyExpiresAt: proof.keyExpiresAt,
      s3: proof.s3,
      listAllowed: proof.list?.state,
      ownKey,
    };
  } finally {
    store.close();
  }
}

function assertCanRevokePasted(config: Config, tokenId: string | null): void {
  if (!config.rotation.enabled) {
    throw new UserError(
      '--revoke-pasted-key needs rotation enabled: the pasted key is revoked once this installation has minted its own.',
      EXIT.USAGE,
    );
  }
  if (tokenId === null) {
    throw new UserError('--revoke-pasted-key needs --token-id: the hub revokes a key by its token id.', EXIT.USAGE);
  }
}

/** Tell the user what happened to keys: which one is in use, and whether rotation will work. */
function reportKeys(
  ctx: CliContext,
  name: string,
  result: { keyExpiresAt: number | null; listAllowed?: 'allowed' | 'refused' | undefined; ownKey: OwnKeyResult | null },
  revokePasted: boolean,
): void {
  const now = Date.now();
  const own = result.ownKey;
  if (own?.kind === 'minted') {
    print(
      ctx.stdout,
      `This installation minted its own API key (token id ${own.tokenId}, expires ${rfc3339(own.expiresAt)}) and uses it from now on; it is rotated automatically.`,
    );
    if (own.pastedRevoked) print(ctx.stdout, 'The key you pasted was revoked on the hub, as asked.');
    else if (revokePasted) print(ctx.stdout, 'The daemon revokes the key you pasted once it uses the new one.');
    else print(ctx.stdout, 'The key you pasted was not revoked: it stays valid on the hub for your other uses.');
    return;
  }
  if (own?.kind === 'refused') {
    print(
      ctx.stderr,
      `Warning: the hub does not let this API key create keys (it answered ${own.status ?? 'no'}), so it cannot be rotated automatically. The pasted key is used; before it expires, create a new one in the EODH web UI and run "eodh-credd workspace set-key ${name}". "eodh-credd status" shows this until then.`,
    );
  } else if (own?.kind === 'unsettled') {
    print(
      ctx.stderr,
      `Warning: could not mint this installation's own key (${own.message}); the pasted key is used and the daemon tries again.`,
    );
  }
  if (result.keyExpiresAt !== null) {
    print(ctx.stdout, `API key expires ${rfc3339(result.keyExpiresAt)} (${daysLeft(result.keyExpiresAt, now)} days).`);
  } else if (result.listAllowed === 'refused') {
    print(ctx.stderr, "Warning: the hub does not let this key list keys, so the key's expiry is unknown.");
  } else if (own === null) {
    print(ctx.stderr, "Warning: without --token-id the API key's expiry is unknown; it will be rotated within a day.");
  }
}

/** Open the store, saying what to do when `init` has not been run (before any secret is asked for). */
export function openInitialised(config: Config, env: CliContext['env']): Store {
  if (!existsSync(config.paths.database)) {
    throw new UserError(`No database at ${config.paths.database}: run "eodh-credd init" first.`, EXIT.CONFIG);
  }
  return openStore(config, env);
}

export async function add(ctx: CliContext): Promise<number> {
  const name = assertWorkspaceName(ctx.args[0]);
  const hubUrl = stringOption(ctx, 'hub') ?? DEFAULT_HUB;
  const tokenId = stringOption(ctx, 'tokenId') ?? null;
  const revokePasted = ctx.options.revokePastedKey === true;
  const config = configOf(ctx);
  if (revokePasted) assertCanRevokePasted(config, tokenId);
  // Every precondition before the key is asked for: init done, the name valid and free, the hub allowed.
  const store = openInitialised(config, ctx.env);
  try {
    assertCanAdd(store, name, hubUrl);
  } finally {
    store.close();
  }
  const apiKey = await readSecret(ctx, `API key for workspace ${name}: `);
  const added = await addWorkspace(
    config,
    ctx.env,
    {
      name,
      hubUrl,
      tokenId,
      region: stringOption(ctx, 'region') ?? DEFAULT_REGION,
      apiKey,
      revokePastedKey: revokePasted,
    },
    ctx,
  );
  print(ctx.stdout, `Workspace "${name}" added; S3 credentials valid until ${rfc3339(added.s3.expiresAt)}.`);
  reportKeys(ctx, name, added, revokePasted);
  if (added.record.s3Bucket) {
    print(ctx.stdout, `Its files: s3://${added.record.s3Bucket}/${added.record.s3Prefix ?? ''}`);
  }
  print(ctx.stdout, `Client token: ${added.tokenFile}`);
  print(ctx.stdout, `Use it: eval "$(eodh-credd env ${name})"`);
  return 0;
}

/**
 * `workspace set-key <ws> [--token-id ID] [--revoke-pasted-key]`: give a workspace a fresh key (when
 * rotation needs the user). With rotation on, this installation mints its own key from it at once.
 */
export async function setKey(ctx: CliContext): Promise<number> {
  const name = assertWorkspaceName(ctx.args[0]);
  const config = configOf(ctx);
  const tokenId = stringOption(ctx, 'tokenId') ?? null;
  const revokePasted = ctx.options.revokePastedKey === true;
  if (revokePasted) assertCanRevokePasted(config, tokenId);
  const store = openInitialised(config, ctx.env);
  try {
    const record = requireWorkspace(store, name);
    const apiKey = await readSecret(ctx, `New API key for workspace ${name}: `);
    const proof = await proveWithProgress(config, { name, hubUrl: record.hubUrl, tokenId, apiKey }, ctx);
    const mark = config.rotation.enabled ? Date.now() : null;
    store.transaction(() => {
      store.replaceActiveKey(
        record.id,
        { tokenId, key: apiKey, expiresAt: proof.keyExpiresAt },
        { revokeWhenReplaced: revokePasted, mintingSince: mark },
      );
      store.saveS3(record.id, proof.s3);
    });
    recordProof(store, record, proof);
    print(ctx.stdout, `Workspace "${name}" now uses the new API key.`);
    const ownKey =
      mark === null
        ? null
        : await mintOwnKey(config, store, record, { key: apiKey, tokenId }, mark, {
            revokePastedNow: revokePasted && !runtimeInfo(config),
          });
    reportKeys(ctx, name, { keyExpiresAt: proof.keyExpiresAt, listAllowed: proof.list?.state, ownKey }, revokePasted);
    return 0;
  } finally {
    store.close();
  }
}

export function list(ctx: CliContext): number {
  const config = configOf(ctx);
  const store = openInitialised(config, ctx.env);
  try {
    const rows = store.listWorkspaces();
    if (ctx.options.names === true) {
      for (const w of rows) print(ctx.stdout, w.name);
      return 0;
    }
    if (rows.length === 0) {
      print(ctx.stdout, 'No workspaces. Add one with "eodh-credd workspace add <name> --hub <url>".');
      return 0;
    }
    // The last column: who besides the daemon's own user may read it (#12).
    const access = store.allAccess();
    for (const w of rows) {
      const allowed = (access.get(w.id) ?? []).map(describeGrant).join(', ') || '-';
      print(ctx.stdout, `${w.name}\t${w.hubUrl}\t${w.region}\t${allowed}`);
    }
    return 0;
  } finally {
    store.close();
  }
}

/**
 * `workspace remove <ws> [--keep-keys]`: forget the workspace; first revoke on the hub the keys this
 * installation minted for it (never the key the user pasted), unless --keep-keys.
 */
export async function remove(ctx: CliContext): Promise<number> {
  const name = assertWorkspaceName(ctx.args[0]);
  const config = configOf(ctx);
  const store = openInitialised(config, ctx.env);
  let sinkFile: string | null | undefined;
  let report: RevokeReport | null = null;
  let pasted = false;
  try {
    const record = requireWorkspace(store, name);
    sinkFile = record.fileSink;
    pasted = store.apiKeys(record.id).some((k) => k.name === null);
    if (ctx.options.keepKeys !== true) report = await revokeMintedKeys(config, store, record);
    if (!store.removeWorkspace(name)) throw unknownWorkspace(name, []);
  } finally {
    store.close();
  }
  rmSync(clientTokenFile(config.paths, name), { force: true });
  if (sinkFile) deleteProfile(sinkFile, name);
  print(ctx.stdout, `Workspace "${name}" removed; its API keys and credentials are gone from this machine.`);
  if (report) {
    if (report.revoked.length > 0) {
      print(
        ctx.stdout,
        `Revoked on the hub the API key${report.revoked.length === 1 ? '' : 's'} this installation minted (token id ${report.revoked.join(', ')}).`,
      );
    }
    for (const f of report.failed) {
      print(
        ctx.stderr,
        `Warning: could not revoke the key this installation minted (token id ${f.tokenId}): ${f.message}; it stays valid on the hub until it expires or you revoke it there.`,
      );
    }
  } else {
    print(
      ctx.stdout,
      'The keys this installation minted were kept (--keep-keys): they stay valid on the hub until they expire.',
    );
  }
  if (pasted)
    print(
      ctx.stdout,
      'The key you pasted was not revoked: it stays valid on the hub until it expires or you revoke it there.',
    );
  return 0;
}

/** Edit a credentials file, turning a file-system failure into a message for the user. */
function editSinkFile(file: string, edit: () => unknown): void {
  try {
    edit();
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new UserError(`Cannot update ${file} (${code}): ${(err as Error).message}`, EXIT.CANTCREAT);
  }
}

/**
 * `workspace sink <ws> --enable [--file PATH] | --disable`: keep the profile [eodh-<ws>] in an AWS
 * shared-credentials file (default $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) up to
 * date on every renewal, for tools that cannot use the endpoint. Without a flag: show the setting.
 */
export function sink(ctx: CliContext): number {
  const values = {
    enable: ctx.options.enable === true,
    disable: ctx.options.disable === true,
    file: stringOption(ctx, 'file'),
  };
  const name = assertWorkspaceName(ctx.args[0]);
  if (values.enable && values.disable) throw new UserError('Give --enable or --disable, not both.', EXIT.USAGE);
  if (values.file !== undefined && !values.enable) throw new UserError('--file goes with --enable.', EXIT.USAGE);
  const config = configOf(ctx);
  const store = openInitialised(config, ctx.env);
  try {
    const record = requireWorkspace(store, name);
    const profile = profileName(name);
    if (!values.enable && !values.disable) {
      print(
        ctx.stdout,
        record.fileSink
          ? `Workspace "${name}": profile [${profile}] is kept in ${record.fileSink}.`
          : `Workspace "${name}": no credentials file is kept (enable with --enable).`,
      );
      return 0;
    }
    const previous = record.fileSink;
    if (values.disable) {
      store.setFileSink(record.id, null);
      if (previous) editSinkFile(previous, () => deleteProfile(previous, name));
      print(
        ctx.stdout,
        previous
          ? `Workspace "${name}": profile [${profile}] removed from ${previous}; no longer kept.`
          : `Workspace "${name}": no credentials file was kept.`,
      );
      return 0;
    }
    const file = values.file ? resolve(values.file) : defaultCredentialsFile(ctx.env);
    editSinkFile(file, () => sinkTarget(file)); // refused now, not at the next renewal, when others could change it
    // Usable at once when a valid credential is stored; the daemon rewrites it on every renewal.
    const stored = store.loadS3(record.id);
    if (stored && isServable(stored, Date.now())) editSinkFile(file, () => writeProfile(file, name, stored));
    store.setFileSink(record.id, file);
    if (previous && previous !== file) editSinkFile(previous, () => deleteProfile(previous, name));
    print(ctx.stdout, `Workspace "${name}": profile [${profile}] is kept up to date in ${file} while the daemon runs.`);
    print(
      ctx.stdout,
      `Use it: AWS_PROFILE=${profile}${file === defaultCredentialsFile({ HOME: ctx.env.HOME }) ? '' : ` AWS_SHARED_CREDENTIALS_FILE=${file}`}`,
    );
    return 0;
  } finally {
    store.close();
  }
}
