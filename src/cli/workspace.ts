/**
 * `eodh-credd workspace add|list|remove`. Adding proves the key against the hub (list tokens to
 * learn its expiry, fetch S3 credentials) before anything is stored: a key that does not work is
 * never saved.
 */

import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../config/load.js';
import { clientTokenFile } from '../config/paths.js';
import { EXIT, UserError } from '../core/errors.js';
import { daysLeft, isServable } from '../core/policy.js';
import { rfc3339 } from '../core/time.js';
import type { S3Credentials } from '../core/types.js';
import { isWorkspaceName } from '../core/workspace-name.js';
import {
  defaultCredentialsFile,
  deleteProfile,
  profileName,
  sinkTarget,
  writeProfile,
} from '../sinks/aws-credentials-file.js';
import { newClientToken, writeClientTokenFile } from '../store/client-tokens.js';
import type { WorkspaceRecord } from '../store/store.js';
import { HubClient } from '../upstream/client.js';
import { isKeyRejected } from '../upstream/errors.js';
import { assertHubUrlAllowed } from '../upstream/url.js';
import { type CliContext, configOf, openStore, print } from './context.js';
import { readSecret } from './prompt.js';

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

export function assertWorkspaceName(name: string | undefined): string {
  if (!name) throw new UserError('Name the workspace.', EXIT.USAGE);
  if (!isWorkspaceName(name)) {
    throw new UserError(
      `"${name}" is not a workspace name: lower-case letters, digits and inner hyphens, at most 63 characters.`,
      EXIT.USAGE,
    );
  }
  return name;
}

/** A workspace's record, or a usage error that says how to add it. */
export function readWorkspace(config: Config, env: CliContext['env'], name: string): WorkspaceRecord {
  const store = openStore(config, env);
  try {
    const record = store.getWorkspace(name);
    if (!record)
      throw new UserError(
        `No workspace "${name}"; add it with "eodh-credd workspace add ${name} --hub <url>".`,
        EXIT.USAGE,
      );
    return record;
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
): Promise<{ keyExpiresAt: number | null; s3: S3Credentials }> {
  const hub = new HubClient(input.hubUrl, {
    timeoutMs: config.hub.timeout_ms,
    retries: config.hub.retries,
    backoff: { initialMs: 500, maxMs: 5_000 },
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

export async function addWorkspace(
  config: Config,
  env: CliContext['env'],
  input: AddWorkspaceInput,
): Promise<AddedWorkspace> {
  assertHubUrlAllowed(input.hubUrl);
  const store = openStore(config, env);
  try {
    if (store.getWorkspace(input.name)) {
      throw new UserError(
        `Workspace "${input.name}" is already configured; remove it first to replace it.`,
        EXIT.USAGE,
      );
    }
    const { keyExpiresAt, s3 } = await proveKey(config, input);
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

async function add(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { hub: { type: 'string' }, 'token-id': { type: 'string' }, region: { type: 'string' } },
  });
  const name = assertWorkspaceName(positionals[0]);
  if (positionals.length > 1) {
    throw new UserError(
      'The API key is never taken from the command line: pipe it on standard input or type it at the prompt.',
      EXIT.USAGE,
    );
  }
  const config = configOf(ctx);
  const apiKey = await readSecret(ctx, `API key for workspace ${name}: `);
  const added = await addWorkspace(config, ctx.env, {
    name,
    hubUrl: values.hub ?? DEFAULT_HUB,
    tokenId: values['token-id'] ?? null,
    region: values.region ?? DEFAULT_REGION,
    apiKey,
  });
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
async function setKey(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'token-id': { type: 'string' } },
  });
  const name = assertWorkspaceName(positionals[0]);
  const config = configOf(ctx);
  const store = openStore(config, ctx.env);
  try {
    const record = store.getWorkspace(name);
    if (!record) throw new UserError(`No workspace "${name}".`, EXIT.USAGE);
    const apiKey = await readSecret(ctx, `New API key for workspace ${name}: `);
    const tokenId = values['token-id'] ?? null;
    const { keyExpiresAt, s3 } = await proveKey(config, { name, hubUrl: record.hubUrl, tokenId, apiKey });
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

function list(ctx: CliContext): number {
  const config = configOf(ctx);
  const store = openStore(config, ctx.env);
  try {
    const rows = store.listWorkspaces();
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

function remove(ctx: CliContext, args: string[]): number {
  const name = assertWorkspaceName(args[0]);
  const config = configOf(ctx);
  const store = openStore(config, ctx.env);
  let sinkFile: string | null | undefined;
  try {
    sinkFile = store.getWorkspace(name)?.fileSink;
    if (!store.removeWorkspace(name)) throw new UserError(`No workspace "${name}".`, EXIT.USAGE);
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
function sink(ctx: CliContext, args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { enable: { type: 'boolean' }, disable: { type: 'boolean' }, file: { type: 'string' } },
  });
  const name = assertWorkspaceName(positionals[0]);
  if (values.enable && values.disable) throw new UserError('Give --enable or --disable, not both.', EXIT.USAGE);
  if (values.file !== undefined && !values.enable) throw new UserError('--file goes with --enable.', EXIT.USAGE);
  const config = configOf(ctx);
  const store = openStore(config, ctx.env);
  try {
    const record = store.getWorkspace(name);
    if (!record) throw new UserError(`No workspace "${name}".`, EXIT.USAGE);
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
    sinkTarget(file); // refused now, not at the next renewal, when others could change it
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

export async function run(ctx: CliContext): Promise<number> {
  const [sub, ...rest] = ctx.args;
  switch (sub) {
    case 'add':
      return add(ctx, rest);
    case 'list':
      return list(ctx);
    case 'remove':
      return remove(ctx, rest);
    case 'set-key':
      return setKey(ctx, rest);
    case 'sink':
      return sink(ctx, rest);
    default:
      throw new UserError('Usage: eodh-credd workspace add|list|remove|set-key|sink …', EXIT.USAGE);
  }
}
