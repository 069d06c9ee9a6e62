/**
 * Owner-only files and directories. Everything eodh-credd keeps is a secret or sits next to one,
 * so directories are 0700, files 0600, and anything found wider is refused rather than "fixed":
 * a widened mode may mean someone else already read it.
 */

import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { StoreError } from './errors.js';

function modeText(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

/** Create the directory (and parents) owner-only, or check that the existing one is. */
export function ensurePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  assertPrivate(path, 'directory', 700);
}

/** Refuse a file or directory that group or others can reach. */
export function assertPrivate(path: string, what: 'file' | 'directory', fix: 600 | 700): void {
  const stat = statSync(path);
  if ((stat.mode & 0o077) !== 0) {
    throw new StoreError(
      'not_private',
      `${path}: this ${what} is accessible by other users (mode ${modeText(stat.mode)}); run "chmod ${fix} ${path}" if nobody else has read it, otherwise start over with new keys.`,
    );
  }
  if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
    throw new StoreError('not_private', `${path}: this ${what} belongs to another user (uid ${stat.uid}).`);
  }
}

/** Make a directory's entries (a file just created or renamed into it) survive a power cut. */
export function syncDirectory(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Create a new 0600 file; never overwrites (returns false when it already exists). */
export function createSecretFile(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncDirectory(dirname(path));
  return true;
}

/** Replace a file atomically (temp file in the same directory, fsync, rename), mode 0600. */
export function replaceSecretFile(path: string, content: string, mode = 0o600): void {
  const temp = `${dirname(path)}/.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', mode);
  try {
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(temp, mode);
    renameSync(temp, path);
    syncDirectory(dirname(path));
  } catch (err) {
    // Don't leave a stray copy of the secret behind when the replace fails.
    rmSync(temp, { force: true });
    throw err;
  }
}
