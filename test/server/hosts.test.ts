import t from 'tap';
import { HostPolicy, isLoopbackHost } from '../../src/server/hosts.js';

t.test('isLoopbackHost', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) t.ok(isLoopbackHost(h), h);
  for (const h of [
    '0.0.0.0',
    '::',
    '192.168.1.2',
    '::ffff:127.0.0.1',
    'localhost.',
    'LOCALHOST.example',
    'example.org',
    '127.0.0.1.nip.io',
    '',
  ]) {
    t.notOk(isLoopbackHost(h), h);
  }
});

t.test('nothing is allowed before the port is known', async (t) => {
  const policy = new HostPolicy('127.0.0.1');
  t.notOk(policy.allows('127.0.0.1:9460'));
  t.notOk(policy.allows(undefined));
  t.same(policy.names(), []);
});

t.test('loopback listener: the loopback names with our port, nothing else', async (t) => {
  const policy = new HostPolicy('127.0.0.1');
  policy.setPort(9460);
  t.same(policy.names().sort(), ['127.0.0.1:9460', '[::1]:9460', 'localhost:9460']);
  t.ok(policy.allows('LocalHost:9460'), 'case-insensitive');
  for (const h of [
    '127.0.0.1',
    '127.0.0.1:9461',
    'evil.example:9460',
    '127.0.0.2:9460',
    '127.0.0.1:9460.',
    ' 127.0.0.1:9460',
  ])
    t.notOk(policy.allows(h), h);

  const other = new HostPolicy('127.0.0.5');
  other.setPort(1234);
  t.ok(other.allows('127.0.0.5:1234'), 'the address we listen on');
  t.ok(other.allows('127.0.0.1:1234'));

  const v6 = new HostPolicy('::1');
  v6.setPort(1234);
  t.ok(v6.allows('[::1]:1234'));
  t.notOk(v6.allows('::1:1234'), 'an IPv6 literal needs its brackets');

  const port80 = new HostPolicy('127.0.0.1');
  port80.setPort(80);
  t.ok(port80.allows('localhost'), 'port 80 may be left out');
  t.ok(port80.allows('localhost:80'));
});

t.test("wildcard listener (allow_non_loopback): loopback plus the machine's own addresses, as literals", async (t) => {
  const policy = new HostPolicy('0.0.0.0', () => ['127.0.0.1', '192.168.1.20', '2001:db8::7', 'fe80::1']);
  policy.setPort(9460);
  t.ok(policy.allows('127.0.0.1:9460'));
  t.ok(policy.allows('192.168.1.20:9460'));
  t.ok(policy.allows('[2001:db8::7]:9460'));
  t.notOk(policy.allows('[fe80::1]:9460'), 'link-local left out');
  t.notOk(policy.allows('myhost.example:9460'), 'no DNS names');
  t.notOk(policy.allows('0.0.0.0:9460'));

  const named = new HostPolicy('10.1.2.3');
  named.setPort(9460);
  t.same(named.names(), ['10.1.2.3:9460'], 'a specific address answers to itself only');
});
