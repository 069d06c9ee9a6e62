/**
 * Who besides the daemon's own user may read a workspace (#12): on a machine shared by several
 * users, the system service serves each workspace to the users and groups granted it. The daemon
 * learns only the uid of the process on the other end of a connection, so a group grant is turned
 * into uids through the machine's account files: the members /etc/group lists, and the users
 * whose primary group (in /etc/passwd) it is. Pure: file text in, sets out.
 */

export type GrantKind = 'user' | 'group';

export interface Grant {
  readonly kind: GrantKind;
  /** A uid or a gid. */
  readonly id: number;
  /** The account's name when the grant was made, for display only (null: granted by a number no file names). */
  readonly name: string | null;
}

export interface UserAccount {
  readonly name: string;
  readonly uid: number;
  /** The primary group. */
  readonly gid: number;
}

export interface GroupAccount {
  readonly name: string;
  readonly gid: number;
  /** User names listed as members. */
  readonly members: readonly string[];
}

/** The machine's users and groups, as /etc/passwd and /etc/group list them. */
export interface Accounts {
  readonly users: readonly UserAccount[];
  readonly groups: readonly GroupAccount[];
}

export const NO_ACCOUNTS: Accounts = { users: [], groups: [] };

/** A decimal id as the files and the command line write it (uid_t is 32 bits; -1 is "none"). */
export function parseId(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n < 0xffffffff ? n : null;
}

/**
 * Lines of name:field:field…; comments, blank lines and NIS compat entries (+name, -name), which
 * stand for accounts this file does not hold, are skipped, as are lines that do not parse.
 */
function records(text: string, minFields: number): string[][] {
  const out: string[][] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const fields = line.split(':');
    if (fields.length >= minFields && fields[0]) out.push(fields);
  }
  return out;
}

/** /etc/passwd: name:password:uid:gid:gecos:home:shell. */
export function parsePasswd(text: string): UserAccount[] {
  const users: UserAccount[] = [];
  for (const [name, , uidText, gidText] of records(text, 4)) {
    const uid = parseId(uidText);
    const gid = parseId(gidText);
    if (name && uid !== null && gid !== null) users.push({ name, uid, gid });
  }
  return users;
}

/** /etc/group: name:password:gid:member,member. */
export function parseGroup(text: string): GroupAccount[] {
  const groups: GroupAccount[] = [];
  for (const [name, , gidText, members = ''] of records(text, 3)) {
    const gid = parseId(gidText);
    if (name && gid !== null) groups.push({ name, gid, members: members.split(',').filter(Boolean) });
  }
  return groups;
}

/** The uids of a group's members: those /etc/group lists (by name) and those whose primary group it is. */
export function groupUids(accounts: Accounts, gid: number): Set<number> {
  const listed = new Set<string>();
  for (const g of accounts.groups) if (g.gid === gid) for (const m of g.members) listed.add(m);
  const uids = new Set<number>();
  for (const u of accounts.users) if (u.gid === gid || listed.has(u.name)) uids.add(u.uid);
  return uids;
}

/** Every uid the grants let in. */
export function uidsAllowed(grants: readonly Grant[], accounts: Accounts): Set<number> {
  const uids = new Set<number>();
  for (const g of grants) {
    if (g.kind === 'user') uids.add(g.id);
    else for (const uid of groupUids(accounts, g.id)) uids.add(uid);
  }
  return uids;
}

/**
 * A user or group as given on the command line (a name, or a number) found in the accounts:
 * its id and name; null for a name no file lists. A number is taken as is, with the name of the
 * account that has it, if any.
 */
export function findAccount(accounts: Accounts, kind: GrantKind, text: string): Grant | null {
  const id = parseId(text);
  const listed: ReadonlyArray<{ name: string; id: number }> =
    kind === 'user'
      ? accounts.users.map((u) => ({ name: u.name, id: u.uid }))
      : accounts.groups.map((g) => ({ name: g.name, id: g.gid }));
  if (id !== null) return { kind, id, name: listed.find((a) => a.id === id)?.name ?? null };
  const found = listed.find((a) => a.name === text);
  return found ? { kind, id: found.id, name: found.name } : null;
}

/** "user alice (uid 1001)", "group eo-team (gid 2001)", "uid 5000". */
export function describeGrant(grant: Grant): string {
  const id = `${grant.kind === 'user' ? 'uid' : 'gid'} ${grant.id}`;
  return grant.name === null ? id : `${grant.kind} ${grant.name} (${id})`;
}
