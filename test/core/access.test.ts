/** Grants and the account files they are resolved against (#12): parsing as the files are written, groups to uids. */
import t from 'tap';
import {
  type Accounts,
  describeGrant,
  findAccount,
  groupUids,
  parseGroup,
  parseId,
  parsePasswd,
  uidsAllowed,
} from '../../src/core/access.js';

const PASSWD = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
alice:x:1001:1001:Alice,,,:/home/alice:/bin/bash
bob:x:1002:2000::/home/bob:/bin/sh

+nisuser::::::
broken:x:notanumber:1:::
short:x:7
carol:x:1003:1003:::
`;

const GROUP = `root:x:0:
eo-team:x:2000:carol,nosuchuser
alice:x:1001:
empty:x:3000:
-nisgroup:::
eo-team-twin:x:2000:alice
bad:x:-1:alice
`;

const accounts: Accounts = { users: parsePasswd(PASSWD), groups: parseGroup(GROUP) };

t.test('ids: decimal, 32 bits, not -1', async (t) => {
  t.equal(parseId('0'), 0);
  t.equal(parseId('1001'), 1001);
  t.equal(parseId('4294967294'), 4294967294);
  for (const bad of ['4294967295', '-1', '1e3', ' 1', '', 'alice', '12345678901', undefined])
    t.equal(parseId(bad), null, String(bad));
});

t.test('passwd and group: comments, blank lines, NIS compat entries and broken lines skipped', async (t) => {
  t.same(
    accounts.users.map((u) => [u.name, u.uid, u.gid]),
    [
      ['root', 0, 0],
      ['daemon', 1, 1],
      ['alice', 1001, 1001],
      ['bob', 1002, 2000],
      ['carol', 1003, 1003],
    ],
  );
  t.same(
    accounts.groups.map((g) => [g.name, g.gid, g.members]),
    [
      ['root', 0, []],
      ['eo-team', 2000, ['carol', 'nosuchuser']],
      ['alice', 1001, []],
      ['empty', 3000, []],
      ['eo-team-twin', 2000, ['alice']],
    ],
  );
  t.same(parsePasswd(''), []);
  t.same(parseGroup('\n\n'), []);
});

t.test("a group's uids: listed members and users whose primary group it is; every line with that gid", async (t) => {
  t.same(
    [...groupUids(accounts, 2000)].sort(),
    [1001, 1002, 1003],
    'carol listed, bob primary, alice on the twin line',
  );
  t.same([...groupUids(accounts, 1001)], [1001], "alice's own group");
  t.same([...groupUids(accounts, 3000)], [], 'a group with nobody in it');
  t.same([...groupUids(accounts, 9999)], [], 'no such group');
});

t.test('uidsAllowed: users as granted, groups through the accounts', async (t) => {
  t.same([...uidsAllowed([], accounts)], []);
  t.same(
    [
      ...uidsAllowed(
        [
          { kind: 'user', id: 5000, name: null },
          { kind: 'group', id: 1001, name: 'alice' },
        ],
        accounts,
      ),
    ].sort(),
    [1001, 5000],
  );
  t.same(
    [...uidsAllowed([{ kind: 'group', id: 2000, name: 'eo-team' }], { users: [], groups: [] })],
    [],
    'no files: nobody',
  );
});

t.test('findAccount: a name must be listed; a number is taken as the id, named when the files know it', async (t) => {
  t.same(findAccount(accounts, 'user', 'alice'), { kind: 'user', id: 1001, name: 'alice' });
  t.same(findAccount(accounts, 'user', '1002'), { kind: 'user', id: 1002, name: 'bob' });
  t.same(findAccount(accounts, 'user', '5000'), { kind: 'user', id: 5000, name: null });
  t.equal(findAccount(accounts, 'user', 'mallory'), null);
  t.equal(findAccount(accounts, 'user', 'eo-team'), null, 'a group is not a user');
  t.same(findAccount(accounts, 'group', 'eo-team'), { kind: 'group', id: 2000, name: 'eo-team' });
  t.same(findAccount(accounts, 'group', '3000'), { kind: 'group', id: 3000, name: 'empty' });
  t.equal(findAccount(accounts, 'group', 'bob'), null, 'a user is not a group');
});

t.test('describeGrant', async (t) => {
  t.equal(describeGrant({ kind: 'user', id: 1001, name: 'alice' }), 'user alice (uid 1001)');
  t.equal(describeGrant({ kind: 'group', id: 2000, name: 'eo-team' }), 'group eo-team (gid 2000)');
  t.equal(describeGrant({ kind: 'user', id: 5000, name: null }), 'uid 5000');
  t.equal(describeGrant({ kind: 'group', id: 7, name: null }), 'gid 7');
});
