/**
 * Local client tokens: what keeps other users of the machine away from a workspace's credentials.
 * 32 random bytes, kept in a 0600 file with no trailing newline (the AWS clients reject a token
 * containing CR or LF), stored in the database only as a SHA-256 digest. The admin token guards
 * the daemon's admin routes the same way.
 */
import { hash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clientTokenFile, type DataPaths } from '../config/paths.js';
import { StoreError, storageKind } from './errors.js';
import { assertPrivate, createSecretFile, ensurePrivateDir, replaceSecretFile } from './files.js';

export interface NewClientToken {
  readonly token: string;
  /** Public handle, used in audit lines instead of the token. */
  readonly id: string;
  readonly hash: Buffer;
}

/**
 * SHA-256 of a token. A token presented to the daemon is hashed once per connection, and the
 * one-shot hash() costs an order of magnitude less than createHash().update().digest() (OpenSSL 3
 * looks the algorithm up for each new hash object).
 */
export function tokenDigest(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}

export function newClientToken(): NewClientToken {
  const token = randomBytes(32).toString('base64url');
  return { token, id: `ct-${randomBytes(4).toString('hex')}`, hash: tokenDigest(token) };
}

export function writeClientTokenFile(paths: DataPaths, workspace: string, token: string): string {
  ensurePrivateDir(paths.tokensDir);
  const file = clientTokenFile(paths, workspace);
  replaceSecretFile(file, token);
  return file;
}

export function readSecretFile(file: string, what: string): string {
  try {
    assertPrivate(file, 'file', 600);
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(
      storageKind(err) ?? 'io',
      `Cannot read the ${what} at ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`,
      { cause: err },
    );
  }
}

export function readClientTokenFile(paths: DataPaths, workspace: string): string {
  return readSecretFile(clientTokenFile(paths, workspace), `client token of workspace "${workspace}"`);
}

/** The admin token (created on first use); returns its digest for the server. */
export function ensureAdminToken(paths: DataPaths): Buffer {
  return ensureToken(paths.adminToken, 'admin token');
}

/** The metrics token's digest, creating the token file (0600) at the first start. */
export function ensureMetricsToken(paths: DataPaths): Buffer {
  return ensureToken(paths.metricsToken, 'metrics token');
}

function ensureToken(file: string, what: string): Buffer {
  createSecretFile(file, randomBytes(32).toString('base64url'));
  return tokenDigest(readSecretFile(file, what));
}

/**
 * Refuse a token directory or token file that others can read (the daemon checks at start): a
 * client token is all another local user needs to get the workspace's credentials.
 */
export function assertTokenFilesPrivate(paths: DataPaths): void {
  if (!existsSync(paths.tokensDir)) return;
  assertPrivate(paths.tokensDir, 'directory', 700);
  for (const name of readdirSync(paths.tokensDir)) {
    if (name.endsWith('.token')) assertPrivate(join(paths.tokensDir, name), 'file', 600);
  }
}
