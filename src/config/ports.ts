/**
 * The default TCP port, so that two users on one machine each get their own without configuring
 * anything (#12). System accounts (uid below 1000, root included: the system service) keep the
 * well-known 9460. Every other user gets 61000 + (uid mod 4000), i.e. 61000–64999: above Linux's
 * ephemeral range (32768–60999, so an outgoing connection never holds it) and inside IANA's
 * dynamic range (49152–65535, where no service is registered). uid 1000 → 62000, 1001 → 62001;
 * the same user always gets the same port, so the URL `env` prints can live in ~/.bashrc.
 */

export const SYSTEM_PORT = 9460;
const USER_PORT_BASE = 61_000;
const USER_PORT_SPAN = 4_000;
/** Debian's and Fedora's SYS_UID_MAX is 999: uids below 1000 are system accounts. */
const FIRST_USER_UID = 1000;

export function defaultPort(uid: number | undefined = process.getuid?.()): number {
  if (uid === undefined || uid < FIRST_USER_UID) return SYSTEM_PORT;
  return USER_PORT_BASE + (uid % USER_PORT_SPAN);
}
