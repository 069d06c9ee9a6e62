import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { readTemplate, renderUnit, shellWord, systemdWord, systemSteps } from '../../src/cli/install-systemd.js';
import { installation, MAIN } from '../helpers/service.js';

t.test('renderUnit points ExecStart at node and the entry point, quoted for systemd', async (t) => {
  const unit = renderUnit(readTemplate('user'), {
    node: '/opt/node 20/bin/node',
    entry: '/srv/credd/main.js',
    configFile: '/etc/credd%1.toml',
  });
  const exec = unit.split('\n').filter((l) => l.startsWith('ExecStart='));
  t.same(
    exec,
    ['ExecStart="/opt/node 20/bin/node" /srv/credd/main.js --config /etc/credd%%1.toml serve'],
    'one ExecStart, spaces quoted, % escaped',
  );
  t.throws(() => renderUnit(readTemplate('user'), { node: 'node', entry: '/x/main.js' }), /absolute/);
  t.equal(systemdWord('/a/$HOME'), '/a/$$HOME', '$ is not expanded by systemd');
  t.equal(systemdWord('/a/"b'), '"/a/\\"b"');
  t.equal(shellWord("/it's here"), "'/it'\\''s here'");
  const withEnv = renderUnit(readTemplate('user'), { node: '/n', entry: '/e', environment: { XDG_DATA_HOME: '/d d' } });
  t.match(
    withEnv,
    /^Environment="XDG_DATA_HOME=\/d d"\nExecStart=\/n \/e serve$/m,
    'environment right before ExecStart',
  );
});

t.test('--user --output writes the unit with this node and dist/src/cli/main.js', async (t) => {
  const inst = installation(t);
  const out = join(inst.dir, 'units');
  const r = await inst.cli(['install-systemd', '--user', '--output', out]);
  t.equal(r.code, 0, r.stderr);
  const file = join(out, 'eodh-credd.service');
  t.match(r.stdout, `Wrote ${file}`);
  const unit = readFileSync(file, 'utf8');
  t.match(unit, `\nExecStart=${process.execPath} ${MAIN} serve\n`);
  t.match(
    unit,
    `\nEnvironment="XDG_CONFIG_HOME=${inst.env.XDG_CONFIG_HOME}"\n`,
    'the service finds the same config as the CLI',
  );
  t.match(unit, `\nEnvironment="XDG_DATA_HOME=${inst.env.XDG_DATA_HOME}"\n`, 'and the same data');
  t.match(unit, /^WantedBy=default\.target$/m);
  t.equal(statSync(file).mode & 0o777, 0o644, 'readable unit file (it holds no secret)');
  t.match(r.stdout, 'First: eodh-credd init', 'not initialised yet: says so');
  t.match(r.stdout, 'systemctl --user enable --now eodh-credd');
});

t.test('--system --dry-run prints the unit and the steps, writes nothing', async (t) => {
  const inst = installation(t);
  const r = await inst.cli(['install-systemd', '--system', '--dry-run']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, '# /etc/systemd/system/eodh-credd.service\n');
  t.match(r.stdout, /^User=eodh-credd$/m);
  t.match(r.stdout, /^LoadCredentialEncrypted=master-key:\/etc\/eodh-credd\/master-key\.cred$/m);
  t.notMatch(
    r.stdout,
    /^Environment=(?!NODE_OPTIONS=)/m,
    'no XDG directories: the system unit uses StateDirectory=/ConfigurationDirectory=',
  );
  t.match(r.stdout, 'systemd-creds encrypt --name=master-key - /etc/eodh-credd/master-key.cred');
  for (const step of systemSteps(process.execPath, MAIN)) t.match(r.stdout, step);
  t.notOk(existsSync(join(inst.dir, 'config', 'systemd')), 'nothing written');
});

t.test('--config is carried into ExecStart; --user with --system is a usage error', async (t) => {
  const inst = installation(t);
  const r = await inst.cli(['--config', inst.configFile, 'install-systemd', '--dry-run']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `ExecStart=${process.execPath} ${MAIN} --config ${inst.configFile} serve`);
  const both = await inst.cli(['install-systemd', '--user', '--system']);
  t.equal(both.code, 64);
  t.match(both.stderr, 'Choose one of --user and --system');
  inst.writeConfig('[server]\nportt = 1\n');
  const broken = await inst.cli(['install-systemd', '--dry-run']);
  t.equal(broken.code, 78, 'a broken configuration is reported now, not at the first start');
});
