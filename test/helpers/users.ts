/**
 * Throw-away local users for the tests that need a second uid (#12): created as root with
 * useradd, removed (with their processes) at teardown. Outside root (a developer's laptop) the
 * test skips with the reason.
 *
 *   const mallory = await throwawayUser(t, 'credd-loc-sq');   // null: skipped, reason given
 *   await runProgram(mallory.runAs[0], [...mallory.runAs.slice(1), 'id', '-u']);
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** A home directory of the user's own (0700), removed at teardown. */
  readonly home: string;
  /** Prefix a command with this to run it as the user (setpriv, with the user's groups). */
  readonly runAs: readonly string[];
}

/** Why throw-away users cannot be made here, or null when they can. */
export function noUsersReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root to create a throw-away user (runs as root in CI)';
  for (const tool of ['useradd', 'userdel', 'setpriv']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed`;
    }
  }
  return null;
}

/** Create the user `name` (removed first if a crashed run left it); null when impossible (t is skipped). */
export function throwawayUser(t: Test, name: string): TestUser | null {
  const reason = noUsersReason();
  if (reason) {
    void t.skip(reason, () => undefined);
    return null;
  }
  removeUser(name);
  execFileSync('useradd', [
    '--no-create-home',
    '--home-dir',
    '/nonexistent',
    '--shell',
    '/bin/sh',
    '--user-group',
    name,
  ]);
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  const home = mkdtempSync(join(tmpdir(), `${name}-`));
  chownSync(home, uid, gid);
  t.teardown(() => {
    removeUser(name);
    rmSync(home, { recursive: true, force: true });
  });
  return {
    name,
    uid,
    gid,
    home,
    runAs: ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--'],
  };
}

function removeUser(name: string): void {
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' });
  } catch {
    return; // no such user
  }
  // --force: even when a process of the user outlived its test (the tests stop theirs by pid).
  execFileSync('userdel', ['--force', name], { stdio: 'ignore' });
}
