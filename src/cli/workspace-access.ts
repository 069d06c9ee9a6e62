/**
 * `eodh-credd workspace allow|deny <ws> --user U | --group G` (#12): on a machine shared by several
 * users (the system service), let a user, or every member of a group, read a workspace besides
 * the daemon's own user — its S3 credentials and API key, with the workspace's client token and
 * nothing else — or stop letting them. Names are looked up in /etc/passwd and /etc/group; a number
 * is taken as the id. The running daemon hears of the change when the store is closed.
 */

import { readAccounts } from '../config/accounts.js';
import {
  type Accounts,
  describeGrant,
  findAccount,
  type Grant,
  type GrantKind,
  groupUids,
  parseId,
} from '../core/access.js';
import { EXIT, UserError } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { type CliContext, configOf, print, stringOption } from './context.js';
import { assertWorkspaceName } from './names.js';
import { openInitialised, requireWorkspace } from './workspace.js';

interface Wanted {
  readonly kind: GrantKind;
  readonly text: string;
}

function wantedOf(ctx: CliContext): Wanted {
  const user = stringOption(ctx, 'user');
  const group = stringOption(ctx, 'group');
  if (user !== undefined && group === undefined) return { kind: 'user', text: user };
  if (group !== undefined && user === undefined) return { kind: 'group', text: group };
  throw new UserError('Give one of --user USER or --group GROUP.', EXIT.USAGE);
}

function unknownAccount(wanted: Wanted): UserError {
  const file = wanted.kind === 'user' ? '/etc/passwd' : '/etc/group';
  const id = wanted.kind === 'user' ? 'uid' : 'gid';
  return new UserError(
    `No ${wanted.kind} "${wanted.text}" in ${file}; give a name it lists, or a numeric ${id}.`,
    EXIT.USAGE,
  );
}

/** The daemon runs as the owner of its data directory, which the CLI must be too to open the store. */
const daemonUid = (): number | undefined => process.getuid?.();

function isDaemonUser(grant: Grant): boolean {
  return grant.kind === 'user' && grant.id === daemonUid();
}

function daemonUserNote(ctx: CliContext, grant: Grant): void {
  print(
    ctx.stdout,
    `${capitalised(describeGrant(grant))} is the daemon's own user, which may always read every workspace; nothing changed.`,
  );
}

const capitalised = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The members of a group by name, as the account files say now. */
function memberNames(accounts: Accounts, gid: number): string[] {
  const uids = groupUids(accounts, gid);
  return accounts.users.filter((u) => uids.has(u.uid)).map((u) => u.name);
}

interface Change<T> {
  readonly name: string;
  readonly grant: Grant;
  readonly accounts: Accounts;
  readonly result: T;
}

/**
 * What allow and deny share: the workspace, the user or group the options name (`find` looks among
 * the workspace's grants and the account files), then `apply` in the store. Null when that is the
 * daemon's own user: a note is printed and nothing changes.
 */
function changeAccess<T>(
  ctx: CliContext,
  find: (granted: readonly Grant[], wanted: Wanted, accounts: Accounts) => Grant | null,
  apply: (store: Store, workspaceId: string, grant: Grant) => T,
): Change<T> | null {
  const name = assertWorkspaceName(ctx.args[0]);
  const wanted = wantedOf(ctx);
  const accounts = readAccounts();
  const store = openInitialised(configOf(ctx), ctx.env);
  try {
    const record = requireWorkspace(store, name);
    const grant = find(store.access(record.id), wanted, accounts);
    if (!grant) throw unknownAccount(wanted);
    if (isDaemonUser(grant)) {
      daemonUserNote(ctx, grant);
      return null;
    }
    return { name, grant, accounts, result: apply(store, record.id, grant) };
  } finally {
    store.close();
  }
}

/** `workspace allow <ws> --user U | --group G`. */
export function allow(ctx: CliContext): number {
  const change = changeAccess(
    ctx,
    (_granted, wanted, accounts) => findAccount(accounts, wanted.kind, wanted.text),
    (store, workspaceId, grant) => store.grantAccess(workspaceId, grant),
  );
  if (!change) return 0;
  const { name, grant, accounts, result: added } = change;
  const who = describeGrant(grant);
  if (!added) {
    print(ctx.stdout, `Workspace "${name}": ${who} was already allowed; nothing changed.`);
    return 0;
  }
  print(ctx.stdout, `Workspace "${name}": ${who} may now fetch its S3 credentials and API key, with its client token.`);
  if (grant.name === null) {
    const file = grant.kind === 'user' ? '/etc/passwd' : '/etc/group';
    print(ctx.stdout, `Note: no ${grant.kind} in ${file} has this id; it was allowed by number.`);
  }
  if (grant.kind === 'group') {
    const members = memberNames(accounts, grant.id);
    print(
      ctx.stdout,
      `Its members now: ${members.length > 0 ? members.join(', ') : 'none'} (the daemon follows /etc/group and /etc/passwd as they change).`,
    );
  }
  print(
    ctx.stdout,
    `Hand them the client token in a file only they can read, e.g. the output of "eodh-credd env ${name}" (README: "Sharing a workspace with other users").`,
  );
  return 0;
}

/** `workspace deny <ws> --user U | --group G`: a stored grant by name or id, even for an account since deleted. */
export function deny(ctx: CliContext): number {
  const change = changeAccess(
    ctx,
    (granted, wanted, accounts) => {
      const id = parseId(wanted.text);
      const match = (g: Grant) => g.kind === wanted.kind && (id !== null ? g.id === id : g.name === wanted.text);
      return granted.find(match) ?? findAccount(accounts, wanted.kind, wanted.text);
    },
    (store, workspaceId, grant) => ({
      removed: store.revokeAccess(workspaceId, grant.kind, grant.id),
      remaining: store.access(workspaceId),
    }),
  );
  if (!change) return 0;
  const { name, grant, accounts } = change;
  const { removed, remaining } = change.result;
  const who = describeGrant(grant);
  if (!removed) {
    print(ctx.stdout, `Workspace "${name}": ${who} was not allowed; nothing changed.`);
    return 0;
  }
  print(ctx.stdout, `Workspace "${name}": ${who} may no longer read it.`);
  // A user may still get in another way: through a group still allowed.
  const via = remaining.filter(
    (g) => grant.kind === 'user' && g.kind === 'group' && groupUids(accounts, g.id).has(grant.id),
  );
  if (via.length > 0) print(ctx.stdout, `Note: they are still allowed through ${via.map(describeGrant).join(', ')}.`);
  return 0;
}
