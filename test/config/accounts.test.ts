/** The account files as the daemon sees them (#12): from memory, looked at again every few seconds, re-read on change. */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { AccountsCache, readAccounts } from '../../src/config/accounts.js';
import { groupUids } from '../../src/core/access.js';
import { ManualClock } from '../helpers/broker-fixture.js';

const files = (dir: string) => ({ passwd: join(dir, 'passwd'), group: join(dir, 'group') });

t.test('readAccounts: the files as they are; a missing file is empty', async (t) => {
  const dir = t.testdir({ passwd: 'alice:x:1001:1001:::\n', group: 'eo:x:2000:alice\n' });
  const accounts = readAccounts(files(dir));
  t.same(accounts.users, [{ name: 'alice', uid: 1001, gid: 1001 }]);
  t.same(accounts.groups, [{ name: 'eo', gid: 2000, members: ['alice'] }]);
  t.same(readAccounts(files(join(dir, 'nowhere'))), { users: [], groups: [] });
  // The real files parse (root is uid 0 on every Linux).
  t.equal(readAccounts().users.find((u) => u.uid === 0)?.name, 'root');
});

t.test('AccountsCache: the same object until a file changes and the recheck interval has passed', async (t) => {
  const dir = t.testdir({ passwd: 'alice:x:1001:1001:::\nbob:x:1002:1002:::\n', group: 'eo:x:2000:alice\n' });
  const clock = new ManualClock(1_000_000);
  const cache = new AccountsCache(clock, files(dir), 2_000);
  const first = cache.current();
  t.same([...groupUids(first, 2000)], [1001]);
  t.equal(cache.current(), first, 'unchanged files: the same object');
  clock.advance(5_000);
  t.equal(cache.current(), first, 'looked at again, still unchanged: the same object');

  // gpasswd/usermod replace the file by rename.
  writeFileSync(join(dir, 'group.new'), 'eo:x:2000:alice,bob\n');
  renameSync(join(dir, 'group.new'), join(dir, 'group'));
  t.equal(cache.current(), first, 'within the interval: the change is not looked for yet');
  clock.advance(2_000);
  const second = cache.current();
  t.not(second, first, 'a changed file is read again');
  t.same([...groupUids(second, 2000)].sort(), [1001, 1002], 'bob added to the group later gets in');

  // Written in place, same size: the inode stays but the change time moves.
  writeFileSync(join(dir, 'group'), 'eo:x:2000:carol,bob\n');
  clock.advance(2_000);
  t.same([...groupUids(cache.current(), 2000)], [1002]);

  // A clock that jumped back does not freeze the cache.
  clock.advance(-60_000);
  writeFileSync(join(dir, 'passwd'), 'alice:x:1001:2000:::\n');
  t.same([...groupUids(cache.current(), 2000)], [1001]);
});

t.test('AccountsCache: a vanished file reads as empty, and is read again when it is back', async (t) => {
  const dir = t.testdir({ passwd: 'alice:x:1001:2000:::\n', group: 'eo:x:2000:\n' });
  const clock = new ManualClock(0);
  const cache = new AccountsCache(clock, files(dir), 1_000);
  t.same([...groupUids(cache.current(), 2000)], [1001]);
  renameSync(join(dir, 'passwd'), join(dir, 'passwd.away'));
  clock.advance(1_000);
  t.same([...groupUids(cache.current(), 2000)], [], 'no passwd: nobody by primary group');
  renameSync(join(dir, 'passwd.away'), join(dir, 'passwd'));
  clock.advance(1_000);
  t.same([...groupUids(cache.current(), 2000)], [1001]);
});
