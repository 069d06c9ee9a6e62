import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { defaultPort } from '../../src/config/ports.js';
import { UserError } from '../../src/core/errors.js';
import { installation } from '../helpers/service.js';

const env = { HOME: '/home/u' };

t.test('defaults derive every path from XDG and HOME', async (t) => {
  const c = parseConfig('', '/x/config.toml', env);
  t.equal(c.server.host, '127.0.0.1');
  t.equal(c.server.port, defaultPort(), 'the port of this uid (ports.ts)');
  t.equal(c.paths.database, '/home/u/.local/share/eodh-credd/credd.db');
  const x = parseConfig('', '/x/config.toml', { HOME: '/h', XDG_DATA_HOME: '/d' });
  t.equal(x.paths.dataDir, '/d/eodh-credd');
  const s = parseConfig('', '/x/config.toml', { HOME: '/h', STATE_DIRECTORY: '/var/lib/eodh-credd' });
  t.equal(s.paths.dataDir, '/var/lib/eodh-credd', 'systemd StateDirectory wins');
  t.ok(Object.isFrozen(c.server), 'frozen');
});

t.test('relative data_dir resolves against the config file', async (t) => {
  const c = parseConfig('[storage]\ndata_dir = "state"', '/etc/credd/config.toml', env);
  t.equal(c.paths.dataDir, '/etc/credd/state');
});

const bad: Array<[string, RegExp]> = [
  [
    '[server]\nport = "abc"',
    /^\/x\/config\.toml: key "server\.port": expected a whole number from 0 to 65535, got "abc"\.$/,
  ],
  ['[server]\nport = 70000', /key "server\.port": expected a whole number from 0 to 65535, got 70000/],
  ['[server]\nprot = 1', /^\/x\/config\.toml: unknown key "server\.prot"\.$/],
  ['surprise = 1', /unknown key "surprise"/],
  ['[log]\nlevel = "loud"', /key "log\.level": expected one of "fatal", "error"/],
  ['[rotation]\nkey_lifetime_days = 31', /key "rotation\.key_lifetime_days"/],
  ['server = 3', /key "server": expected a table, got 3/],
  ['[server\nport = 1', /^\/x\/config\.toml:1:\d+: invalid TOML/],
];
for (const [text, message] of bad) {
  t.test(`rejects ${JSON.stringify(text)}`, async (t) => {
    t.throws(() => parseConfig(text, '/x/config.toml', env), { message, exitCode: 78 });
  });
}

t.test('loadConfig: missing default file is fine, missing explicit file is not', async (t) => {
  const dir = t.testdir({});
  const c = loadConfig({ env: { HOME: dir } });
  t.equal(c.fileExists, false);
  t.throws(() => loadConfig({ env: { HOME: dir }, explicitFile: join(dir, 'nope.toml') }), UserError);
  const file = join(dir, 'c.toml');
  writeFileSync(file, '[server]\nport = 1234\n');
  t.equal(loadConfig({ env: { HOME: dir, EODH_CREDD_CONFIG: file } }).server.port, 1234, 'EODH_CREDD_CONFIG');
  t.equal(
    loadConfig({ env: { HOME: dir, EODH_CREDD_CONFIG: '/nope' }, explicitFile: file }).server.port,
    1234,
    '--config wins',
  );
});

t.test('sweep_schedule must be a cron expression', async (t) => {
  t.throws(() => parseConfig('[renewal]\nsweep_schedule = "every minute"', '/x/c.toml', env), {
    message: /^\/x\/c\.toml: key "renewal\.sweep_schedule": not a cron expression/,
    exitCode: 78,
  });
  t.equal(
    parseConfig('[renewal]\nsweep_schedule = "*/5 * * * * *"', '/x/c.toml', env).renewal.sweep_schedule,
    '*/5 * * * * *',
  );
});

t.test('config.example.toml documents every key with its default', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const example = fileURLToPath(new URL('../../config.example.toml', import.meta.url));
  const text = readFileSync(example, 'utf8');
  const parsed = parseConfig(text, example, env);
  const defaults = parseConfig('', example, env);
  for (const section of ['server', 'storage', 'renewal', 'rotation', 'hub', 'sts', 'log'] as const) {
    t.same(parsed[section], defaults[section], `[${section}] shows the defaults`);
    for (const key of Object.keys(defaults[section])) {
      t.match(text, new RegExp(`^(# )?${key} = `, 'm'), `${section}.${key} is documented`);
    }
  }
});

t.test('a config file others can write, or that another user owns, is refused', async (t) => {
  const dir = t.testdir({ 'config.toml': '[server]\nport = 0\n' });
  const file = join(dir, 'config.toml');
  const load = () => loadConfig({ explicitFile: file, env });
  t.equal(load().server.port, 0, 'owner-writable only: fine');
  for (const mode of [0o666, 0o646, 0o620]) {
    chmodSync(file, mode);
    t.throws(load, {
      message: `${file}: the configuration file is writable by other users (mode 0${mode.toString(8)}); refusing it: run "chmod go-w ${file}".`,
      exitCode: 77,
    });
  }
  chmodSync(file, 0o644);
  t.equal(load().server.port, 0, 'readable by others is fine: it holds no secret');

  chownSync(file, 4242, 4242);
  t.throws(load, {
    message: `${file}: the configuration file belongs to another user (uid 4242); refusing it: use a file of your own.`,
    exitCode: 77,
  });
  chownSync(file, 0, 0);

  const open = join(dir, 'open');
  mkdirSync(open);
  writeFileSync(join(open, 'config.toml'), '', { mode: 0o600 });
  chmodSync(open, 0o777);
  t.throws(() => loadConfig({ explicitFile: join(open, 'config.toml'), env }), {
    message: `${join(open, 'config.toml')}: the configuration file's directory is writable by other users (mode 0777), who could replace it; refusing it: run "chmod go-w ${open}".`,
  });
  chmodSync(open, 0o1777);
  t.doesNotThrow(() => loadConfig({ explicitFile: join(open, 'config.toml'), env }), 'sticky, like /tmp: fine');
});

t.test('the CLI, the daemon and doctor all refuse a config file others can write', async (t) => {
  const inst = installation(t);
  t.equal((await inst.cli(['init'])).code, 0);
  chmodSync(inst.configFile, 0o666);
  const sentence = `${inst.configFile}: the configuration file is writable by other users (mode 0666); refusing it: run "chmod go-w ${inst.configFile}".`;
  for (const args of [['status'], ['serve'], ['env', 'ws']]) {
    const r = await inst.cli(args);
    t.equal(r.code, 77, `${args[0]}: exit 77`);
    t.equal(r.stderr, `eodh-credd: ${sentence}\n`, `${args[0]}: one sentence naming the file`);
  }
  const doctor = await inst.cli(['doctor']);
  t.equal(doctor.code, 1);
  t.match(doctor.stdout, `FAIL config: ${sentence}`);
});
