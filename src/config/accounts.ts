/**
 * The machine's account files, /etc/passwd and /etc/group, read for the per-workspace grants
 * (#12): the CLI turns the names it is given into ids, the daemon turns a group into its members'
 * uids. Read directly, never by running a program (id, getent) on the request path. Users that
 * only a directory service knows (LDAP, sssd) are not in these files: grant them by uid.
 */
import { readFileSync, statSync } from 'node:fs';
import { type Accounts, parseGroup, parsePasswd } from '../core/access.js';
import type { Clock } from '../core/types.js';

export interface AccountFiles {
  readonly passwd: string;
  readonly group: string;
}

export const SYSTEM_ACCOUNT_FILES: AccountFiles = { passwd: '/etc/passwd', group: '/etc/group' };

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    // No such file, or unreadable: nobody is found there, so a group grant lets nobody in.
    return '';
  }
}

export function readAccounts(files: AccountFiles = SYSTEM_ACCOUNT_FILES): Accounts {
  return { users: parsePasswd(readOrEmpty(files.passwd)), groups: parseGroup(readOrEmpty(files.group)) };
}

/** How soon the daemon sees a change to the account files (a user added to a group). */
export const ACCOUNTS_RECHECK_MS = 2_000;

/**
 * The account files as the daemon sees them: answered from memory, and at most every
 * `recheckMs` the files are looked at (stat) and read again when one changed. useradd, usermod
 * and gpasswd replace the files by rename, so the inode, size or mtime changes. The same object
 * is returned while nothing changed, so callers can keep what they derived from it.
 */
export class AccountsCache {
  private accounts: Accounts | null = null;
  private signature = '';
  private checkedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    private readonly files: AccountFiles = SYSTEM_ACCOUNT_FILES,
    private readonly recheckMs = ACCOUNTS_RECHECK_MS,
  ) {}

  current(): Accounts {
    const now = this.clock.now();
    if (this.accounts && now - this.checkedAt < this.recheckMs && now >= this.checkedAt) return this.accounts;
    this.checkedAt = now;
    const signature = `${fileSignature(this.files.passwd)} ${fileSignature(this.files.group)}`;
    if (!this.accounts || signature !== this.signature) {
      this.accounts = readAccounts(this.files);
      this.signature = signature;
    }
    return this.accounts;
  }
}

function fileSignature(file: string): string {
  try {
    const stat = statSync(file, { bigint: true });
    return `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
  } catch {
    return '-'; // absent or unreadable: read as empty until it appears
  }
}
