/**
 * `eodh-credd workspace add|list|remove`. Adding proves the key against the hub (list tokens to
 * learn its expiry, fetch S3 credentials) before anything is stored: a key that does not work is
 * never saved.
 */

import { existsSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config/load.js';
import { clientTokenFile } from '../config/paths.js';
import { EXIT, UserError } from '../core/errors.js';
import { daysLeft, isServable } from '../core/policy.js';
import { rfc3339 } from '../core/time.js';
import type { S3Credentials } from '../core/types.js';
import { defaultCredentialsFile, deleteProfile, profileName, writeProfile } from '../sinks/aws-credentials-file.js';
import { newClientToken, writeClientTokenFile } from '../store/client-tokens.js';
import type { Store, WorkspaceRecord } from '../store/store.js';
import { HubClient } from '../upstream/client.js';
import { isKeyRejected } from '../upstream/errors.js';
import { assertHubUrlAllowed } from '../upstream/url.js';
import { type CliContext, configOf, print, stringOption } from './context.js';
import { assertWorkspaceName, unknownWorkspace } from './names.js';
import { openStore } from './open-store.js';
import { withProgress } from './progress.js';
import { readSecret } from './prompt.js';

export { assertWorkspaceName } from './names.js';

export const DEFAULT_HUB = 'https://eodatahub.org.uk';
export const DEFAULT_REGION = 'eu-west-2';

export interface AddWorkspaceInput {
  readonly name: string;
  readonly hubUrl: string;
  readonly tokenId: string | null;
  readonly region: string;
  readonly apiKey: string;
}

export interface AddedWorkspace {
  readonly record: WorkspaceRecord;
  readonly tokenFile: string;
  readonly keyExpiresAt: number | null;
  readonly s3: S3Credentials;
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

/**
 * Prove an API key against the hub before anything is stored: list the workspace's tokens (which
 * also tells the key's expiry when its token id is given) and fetch S3 credentials.
 */
export async function proveKey(
  config: Config,
  input: Pick<AddWorkspaceInput, 'name' | 'hubUrl' | 'tokenId' | 'apiKey'>,
  progress?: Progress,
): Promise<{ keyExpiresAt: number | null; s3: S3Credentials }> {
  const work = proveKeyQuietly(config, input);
  return progress ? withProgress(progress, `Checking the key with ${input.hubUrl}`, proofLimitMs(config), work) : work;
}

/** Where progress goes (a terminal's stderr). */
type Progress = Pick<CliContext, 'stderr' | 'env'>;

const PROOF_BACKOFF = { initialMs: 500, maxMs: 5_000 };

/** The longest a proof can take: two hub calls, each with its retries and the backoff between them. */
export function proofLimitMs(config: Config): number {
  let backoff = 0;
  for (let i = 0, delay = PROOF_BACKOFF.initialMs; i < config.hub.retries; i++, delay *= 2)
    backoff += Math.min(delay, PROOF_BACKOFF.maxMs);
  return 2 * (config.hub.timeout_ms * (config.hub.retries + 1) + backoff);
}

async function proveKeyQuietly(
  config: Config,
  input: Pick<AddWorkspaceInput, 'name' | 'hubUrl' | 'tokenId' | 'apiKey'>,
): Promise<{ keyExpiresAt: number | null; s3: S3Credentials }> {
  const hub = new HubClient(input.hubUrl, {
    timeoutMs: config.hub.timeout_ms,
    retries: config.hub.retries,
    backoff: PROOF_BACKOFF,
  });
  let keyExpiresAt: number | null = null;
  let s3: S3Credentials;
  try {
    const tokens = await hub.listTokens(input.name, input.apiKey);
    if (input.tokenId !== null) {
      const mine = tokens.find((t) => t.id === input.tokenId);
      if (!mine)
        throw new UserError(
          `The hub lists no token with id "${input.tokenId}" in workspace "${input.name}"; check --token-id.`,
          EXIT.DATAERR,
        );
      keyExpiresAt = mine.expiresAt;
    }
    s3 = await hub.s3Credentials(input.name, input.apiKey, Date.now());
  } catch (err) {
    if (err instanceof UserError) throw err;
    if (isKeyRejected(err)) {
      throw new UserError(
        `The hub refused this API key for workspace "${input.name}" (${err.message}); nothing was stored.`,
        EXIT.NOPERM,
      );
    }
    throw new UserError(
      `Could not prove the key against ${input.hubUrl}: ${(err as Error).message}; nothing was stored.`,
      EXIT.UNAVAILABLE,
    );
  }
  return { keyExpiresAt, s3 };
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
  const store = openStore(config, env);
  try {
    assertCanAdd(store, input.name, input.hubUrl);
    const { keyExpiresAt, s3 } = await proveKey(config, input, progress);
    const client = newClientToken();
    const tokenFile = writeClientTokenFile(config.paths, input.name, client.token);
    try {
      const record = store.addWorkspace({
        name: input.name,
        hubUrl: input.hubUrl,
        region: input.region,
        clientTokenId: client.id,
        clientTokenHash: client.hash,
        apiKey: { tokenId: input.tokenId, key: input.apiKey, expiresAt: keyExpiresAt },
        s3,
      });
      return { record, tokenFile, keyExpiresAt, s3 };
    } catch (err) {
      rmSync(tokenFile, { force: true });
      throw err;
    }
  } finally {
    store.close();
  }
}

/** Open the store, saying what to do when `init` has not been run (before any secret is asked for). */
function openInitialised(config: Config, env: CliContext['env']): Store {
  if (!existsSync(config.paths.database)) {
    throw new UserError(`No database at ${config.paths.database}: run "eodh-credd init" first.`, EXIT.CONFIG);
  }
  return openStore(config, env);
}

export async function add(ctx: CliContext): Promise<number> {
  const name = assertWorkspaceName(ctx.args[0]);
  const hubUrl = stringOption(ctx, 'hub') ?? DEFAULT_HUB;
  const config = configOf(ctx);
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
      tokenId: stringOption(ctx, 'tokenId') ?? null,
      region: stringOption(ctx, 'region') ?? DEFAULT_REGION,
      apiKey,
    },
    ctx,
  );
  const now = Date.now();
  print(ctx.stdout, `Workspace "${name}" added; S3 credentials valid until ${rfc3339(added.s3.expiresAt)}.`);
  if (added.keyExpiresAt !== null) {
    print(ctx.stdout, `API key expires ${rfc3339(added.keyExpiresAt)} (${daysLeft(added.keyExpiresAt, now)} days).`);
  } else {
    print(ctx.stderr, "Warning: without --token-id the API key's expiry is unknown; it will be rotated within a day.");
  }
  print(ctx.stdout, `Client token: ${added.tokenFile}`);
  print(ctx.stdout, `Use it: eval "$(eodh-credd env ${name})"`);
  return 0;
}

/** `workspace set-key <ws> [--token-id ID]`: give a workspace a fresh key (when rotation needs the user). */
export async function setKey(ctx: CliContext): Promise<number> {
  const name = assertWorkspaceName(ctx.args[0]);
  const config = configOf(ctx);
  const store = openInitialised(config, ctx.env);
  try {
    const record = requireWorkspace(store, name);
    const apiKey = await readSecret(ctx, `New API key for workspace ${name}: `);
    const tokenId = stringOption(ctx, 'tokenId') ?? null;
    const { keyExpiresAt, s3 } = await proveKey(config, { name, hubUrl: record.hubUrl, tokenId, apiKey }, ctx);
    store.db
      .transaction(() => {
        store.replaceActiveKey(record.id, { tokenId, key: apiKey, expiresAt: keyExpiresAt });
        store.saveS3(record.id, s3);
      })
      .immediate();
    print(
      ctx.stdout,
      `Workspace "${name}" now uses the new API key${keyExpiresAt === null ? '' : ` (expires ${rfc3339(keyExpiresAt)})`}.`,
    );
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
    for (const w of rows) print(ctx.stdout, `${w.name}\t${w.hubUrl}\t${w.region}`);
    return 0;
  } finally {
    store.close();
  }
}

export function remove(ctx: CliContext): number {
  const name = assertWorkspaceName(ctx.args[0]);
  const config = configOf(ctx);
  const store = openInitialised(config, ctx.env);
  let sinkFile: string | null | undefined;
  try {
    sinkFile = requireWorkspace(store, name).fileSink;
    if (!store.removeWorkspace(name)) throw unknownWorkspace(name, []);
  } finally {
    store.close();
  }
  rmSync(clientTokenFile(config.paths, name), { force: true });
  if (sinkFile) deleteProfile(sinkFile, name);
  print(
    ctx.stdout,
    `Workspace "${name}" removed; its API key and credentials are gone from this machine (the key stays valid on the hub until it expires or you revoke it there).`,
  );
  return 0;
}

/** Edit a credentials file, turning a file-system failure into a message for the user. */
function editSinkFile(file: string, edit: () => unknown): void {
  try {
    edit();
  } catch (err) {
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
