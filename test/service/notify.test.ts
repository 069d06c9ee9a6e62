/** The notifier with a stand-in for systemd-notify that records its arguments. */

import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { statusValue, systemdNotifier } from '../../src/service/notify.js';

function standIn(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'credd-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'calls');
  const command = join(dir, 'systemd-notify');
  writeFileSync(command, `#!/bin/sh\nprintf '%s|' "$NOTIFY_SOCKET" "$@" >> '${log}'\necho >> '${log}'\n`);
  chmodSync(command, 0o755);
  const calls = () => {
    try {
      return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  return { command, calls, dir };
}

t.test('without NOTIFY_SOCKET nothing runs', async (t) => {
  const { command, calls } = standIn(t);
  const notifier = systemdNotifier({ env: {}, command });
  t.equal(notifier.enabled, false);
  await notifier.ready('x');
  await notifier.status('y');
  await notifier.stopping();
  t.same(calls(), []);
});

t.test('messages in order, the same status only once', async (t) => {
  const { command, calls } = standIn(t);
  const notifier = systemdNotifier({ env: { NOTIFY_SOCKET: '/run/notify' }, command });
  t.equal(notifier.enabled, true);
  void notifier.ready('1 workspace');
  void notifier.status('1 workspace');
  void notifier.status('2 workspaces\nsecond line');
  void notifier.reloading();
  await notifier.stopping('stopping');
  t.same(calls(), [
    '/run/notify|READY=1|STATUS=1 workspace|',
    '/run/notify|STATUS=2 workspaces second line|',
    '/run/notify|RELOADING=1|',
    '/run/notify|STOPPING=1|STATUS=stopping|',
  ]);
});

t.test('a missing systemd-notify is logged once and never throws', async (t) => {
  const { dir } = standIn(t);
  const errors: string[] = [];
  const logger = { child: () => ({ error: (_o: unknown, msg: string) => errors.push(msg) }) } as never;
  const notifier = systemdNotifier({ env: { NOTIFY_SOCKET: '/run/notify' }, command: join(dir, 'nope'), logger });
  await notifier.ready();
  await notifier.status('a');
  t.same(errors, ['systemd-notify failed']);
});

t.test('status values stay on one line', async (t) => {
  t.equal(statusValue('a\r\nb\nc'), 'a b c');
  t.equal(statusValue('x'.repeat(300)).length, 200);
});
