/**
 * The master key that seals every secret in the database. Preferred source: a systemd credential
 * ($CREDENTIALS_DIRECTORY/master-key, from LoadCredential= or LoadCredentialEncrypted=), so the key
 * never sits on disk in clear. Otherwise the owner-only key file that `init` creates once and never
 * overwrites.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EXIT, UserError } from '../core/errors.js';
import { assertPrivate, createSecretFile } from './files.js';
import { MASTER_KEY_BYTES } from './seal.js';

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

export function readMasterKey(keyFile: string, env: Readonly<Record<string, string | undefined>>): MasterKeySource {
  const origin = masterKeyLocation(keyFile, env);
  if (!existsSync(origin)) {
    throw new UserError(`No master key at ${origin}: run "eodh-credd init" first.`, EXIT.CONFIG);
  }
  // systemd already protects $CREDENTIALS_DIRECTORY (root-owned, ramfs, 0400); check our own file.
  if (origin === keyFile) assertPrivate(origin, 'file', 600);
  return { key: decodeMasterKey(readFileSync(origin, 'utf8'), origin), origin };
}

export function decodeMasterKey(text: string, origin: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== MASTER_KEY_BYTES || key.toString('base64') !== text.trim()) {
    throw new UserError(`${origin}: not a master key (expected ${MASTER_KEY_BYTES} bytes in base64).`, EXIT.CONFIG);
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
