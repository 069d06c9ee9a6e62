/**
 * systemd socket activation (sd_listen_fds(3)): with a .socket unit, systemd holds the listening
 * sockets while the service is stopped or restarting, so the port is never free for another user
 * to take (#12), and connections made meanwhile wait in the queue instead of being refused.
 * systemd passes them as file descriptors 3, 4, … and says so in LISTEN_FDS, naming the process
 * they are for in LISTEN_PID; sockets meant for another process (a parent that did not clear the
 * variables) are not ours to take.
 */

/** The first passed descriptor (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

export interface InheritedSockets {
  readonly fds: number[];
  /** Why variables that were present were not used, for the log; null when they were. */
  readonly ignored: string | null;
}

export function inheritedSockets(env: Readonly<Record<string, string | undefined>>, pid: number): InheritedSockets {
  const count = env.LISTEN_FDS;
  if (count === undefined) return { fds: [], ignored: null };
  if (env.LISTEN_PID !== String(pid))
    return { fds: [], ignored: `LISTEN_PID is ${env.LISTEN_PID ?? 'unset'}, not this process (${pid})` };
  const n = Number(count);
  if (!Number.isInteger(n) || n < 1 || n > 16) return { fds: [], ignored: `LISTEN_FDS=${count} is not a socket count` };
  return { fds: Array.from({ length: n }, (_, i) => FIRST_FD + i), ignored: null };
}

/** Child processes must not think the sockets are theirs (sd_listen_fds with unset_environment). */
export function forgetInheritedSockets(env: Record<string, string | undefined>): void {
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
}
