/** reloadPlan: what a SIGHUP applies live, what needs a restart, and what stays in force. */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { reloadPlan } from '../../src/daemon/reload-plan.js';

const env = { HOME: '/home/u' };
const config = (text: string) => parseConfig(text, '/etc/credd.toml', env);
const base = config('[server]\nport = 9460\n');

t.test('no change: nothing to rebuild, nothing to restart', async (t) => {
  const plan = reloadPlan(base, config('[server]\nport = 9460\n'));
  t.same(plan.restart, []);
  t.notOk(plan.sweepScheduleChanged || plan.hubChanged || plan.stsChanged);
});

t.test('live changes are applied and flagged', async (t) => {
  const next = config(
    '[server]\nport = 9460\n[renewal]\nsweep_schedule = "*/5 * * * * *"\n[hub]\ntimeout_ms = 2000\n[sts]\nverify = false\n[log]\nlevel = "debug"\n',
  );
  const plan = reloadPlan(base, next);
  t.ok(plan.sweepScheduleChanged);
  t.ok(plan.hubChanged);
  t.ok(plan.stsChanged);
  t.equal(plan.config.hub.timeout_ms, 2000);
  t.equal(plan.config.log.level, 'debug');
  t.same(plan.restart, []);
});

t.test('listen address, data directory and log format need a restart and stay as they were', async (t) => {
  const next = config(
    '[server]\nport = 9999\nhost = "::1"\n[storage]\ndata_dir = "/elsewhere"\n[log]\nformat = "pretty"\n',
  );
  const plan = reloadPlan(base, next);
  t.equal(plan.restart.length, 3);
  t.match(plan.restart.join('\n'), /server\.host\/server\.port.*\n.*storage\.data_dir.*\n.*log\.format/);
  t.equal(plan.config.server.port, 9460, 'the port in force is unchanged');
  t.equal(plan.config.paths.dataDir, base.paths.dataDir);
  t.equal(plan.config.log.format, base.log.format);
});
