/**
 * Who holds a TCP port, for the one-sentence error a daemon gives when it cannot listen (#12):
 * Linux's socket tables (/proc/net/tcp, tcp6) say which uid listens on the port and the socket's
 * inode; the pid is the process with that inode among its open files, found only where /proc lets
 * us read them (our own processes, or all of them as root).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readAccounts } from '../config/accounts.js';
import { EXIT, UserError } from '../core/errors.js';

export interface PortHolder {
  readonly uid: number;
  readonly user: string | null;
  readonly pid: number | null;
  readonly command: string | null;
}

const LISTEN = '0A';

/** The listening socket on `port` (any address), from the kernel's tables; null when none is found. */
export function findPortHolder(port: number, procRoot = '/proc'): PortHolder | null {
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`${procRoot}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [local, state, uid, inode] = [fields[1], fields[3], fields[7], fields[9]];
      if (!local || state !== LISTEN || uid === undefined || inode === undefined) continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) !== port) continue;
      const pid = pidOfSocket(inode, procRoot);
      return { uid: Number(uid), user: userName(Number(uid)), pid, command: pid === null ? null : commandOf(pid) };
    }
  }
  return null;
}

function pidOfSocket(inode: string, procRoot: string): number | null {
  const wanted = `socket:[${inode}]`;
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`${procRoot}/${entry}/fd`);
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`${procRoot}/${entry}/fd/${fd}`) === wanted) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
}

/**
 * The program's name from argv[0]. Not /proc/<pid>/comm: that is the main thread's name, which
 * Node 22 and later set to "MainThread", and it is cut at 15 bytes. Only argv[0]'s base name is
 * read, never the arguments, which may hold secrets.
 */
function commandOf(pid: number): string | null {
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    const name = argv0.slice(argv0.lastIndexOf('/') + 1).trim();
    if (name) return name;
  } catch {
    // gone, or hidden by hidepid: fall back to the thread name
  }
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function userName(uid: number): string | null {
  return readAccounts().users.find((u) => u.uid === uid)?.name ?? null;
}

/** Who, in words: "pid 4121 (python3) of user alice", "a process of user bob (uid 1001)". */
export function describeHolder(holder: PortHolder): string {
  const user = holder.user ? `user ${holder.user} (uid ${holder.uid})` : `uid ${holder.uid}`;
  return holder.pid === null
    ? `a process of ${user}`
    : `pid ${holder.pid}${holder.command ? ` (${holder.command})` : ''} of ${user}`;
}

/**
 * The error to give for a failed listen: EADDRINUSE becomes one sentence naming the holder and
 * the fix, exit 75 (EX_TEMPFAIL: it may work once the other program stops); anything else is
 * returned unchanged.
 */
export function portInUse(err: unknown, host: string, port: number, configFile: string): unknown {
  if ((err as NodeJS.ErrnoException | null)?.code !== 'EADDRINUSE') return err;
  const holder = findPortHolder(port);
  const who = holder ? describeHolder(holder) : 'another program';
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new UserError(
    `${where} is already in use by ${who}; stop that program, or set server.port in ${configFile} to a free port.`,
    EXIT.TEMPFAIL,
  );
}
