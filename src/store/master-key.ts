/**
 * The master key that seals every secret in the database. Preferred source: a systemd credential
 * ($CREDENTIALS_DIRECTORY/master-key, from LoadCredential= or LoadCredentialEncrypted=), so the key
 * never sits on disk in clear. Otherwise the owner-only key file that `init` creates once and never
 * overwrites.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { dataPaths } from '../config/paths.js';

import { databaseKeyMatches } from './database.js';
import { StoreError } from './errors.js';
import { assertPrivate, createSecretFile, syncDirectory } from './files.js';
import { MASTER_KEY_BYTES, sealingKey } from './seal.js';

export const CREDENTIAL_NAME = 'master-key';

export interface MasterKeySource {
  readonly key: Buffer;
  /** Where it came from, for messages (never the key itself). */
  readonly origin: string;
}

export function masterKeyLocation(keyFile: string, env: Readonly<Record<string, string | undefined>>): string {
  const credentials = env.CREDENTIALS_DIRECTORY;
  if (credentials && existsSync(join(credentials, CREDENTIAL_NAME))) return join(credentials, CREDENTIAL_NAME);
  return keyFile;
}

/**
 * Read the master key. A key file is first checked for a rekey that stopped half way (see
 * finishInterruptedRekey); the database is the key file's sibling unless said otherwise.
 */
export function readMasterKey(
  keyFile: string,
  env: Readonly<Record<string, string | undefined>>,
  databaseFile: string = dataPaths(dirname(keyFile)).database,
): MasterKeySource {
  const origin = masterKeyLocation(keyFile, env);
  if (origin === keyFile) finishInterruptedRekey(keyFile, databaseFile);
  if (!existsSync(origin)) {
    throw new StoreError('missing', `No master key at ${origin}: run "eodh-credd init" first.`);
  }
  // systemd already protects $CREDENTIALS_DIRECTORY (root-owned, ramfs, 0400); check our own file.
  if (origin === keyFile) assertPrivate(origin, 'file', 600);
  return { key: decodeMasterKey(readFileSync(origin, 'utf8'), origin), origin };
}

export function decodeMasterKey(text: string, origin: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== MASTER_KEY_BYTES || key.toString('base64') !== text.trim()) {
    throw new StoreError('bad_key_file', `${origin}: not a master key (expected ${MASTER_KEY_BYTES} bytes in base64).`);
  }
  return key;
}

export function generateMasterKey(): string {
  return randomBytes(MASTER_KEY_BYTES).toString('base64');
}

/** Create the key file if there is none. Returns whether it was created. */
export function createMasterKeyFile(keyFile: string): boolean {
  return createSecretFile(keyFile, generateMasterKey());
}

/** Where `eodh-credd rekey` puts the new key until the database is sealed under it. */
export function pendingKeyFile(keyFile: string): string {
  return `${keyFile}.new`;
}

function keyIn(file: string): Buffer | undefined {
  try {
    assertPrivate(file, 'file', 600);
    return decodeMasterKey(readFileSync(file, 'utf8'), file);
  } catch {
    return undefined;
  }
}

/**
 * Rekey runs in three durable steps (src/cli/rekey.ts):
 *   1. write the new key to master-key.new (0600, fsync, directory fsync);
 *   2. re-seal every value and the key check under it, in one database transaction;
 *   3. rename master-key.new over master-key (directory fsync).
 * A crash before step 2 commits leaves the database under the old key: master-key opens it as
 * before and master-key.new is inert (the next rekey removes it; nothing else does, since a
 * rekey may be between steps 1 and 2 right now). A crash after step 2 leaves the database under
 * the new key with master-key still the old one: every open comes here first, finds that the old
 * key fails and master-key.new matches, and does step 3 itself. Nothing is ever decided from the
 * files alone: the database's key check says which key it was sealed under.
 */
export function finishInterruptedRekey(keyFile: string, databaseFile: string): boolean {
  const pending = pendingKeyFile(keyFile);
  if (!existsSync(pending) || !existsSync(databaseFile)) return false;
  const next = keyIn(pending);
  if (!next) return false; // torn or widened: never committed to, or not ours to trust
  const current = existsSync(keyFile) ? keyIn(keyFile) : undefined;
  if (current && databaseKeyMatches(databaseFile, sealingKey(current))) return false;
  if (!databaseKeyMatches(databaseFile, sealingKey(next))) return false;
  try {
    renameSync(pending, keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // another process finished it
    throw err;
  }
  syncDirectory(dirname(keyFile));
  return true;
}
