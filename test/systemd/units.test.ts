/**
 * The shipped units, as install-systemd writes them: `systemd-analyze verify` is clean and the
 * system unit's `systemd-analyze security` exposure stays at or below 2.5. Both run offline
 * (systemd need not be PID 1); verify needs ExecStart's binary to exist, so the units are written
 * by the built CLI with this node and this dist/.
 */

import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { installation } from '../helpers/service.js';
import { HINTS, requireTool, systemdAnalyze } from '../helpers/tools.js';

const run = promisify(execFile);
const MAX_EXPOSURE = 2.5;

async function tool(analyze: string, args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(analyze, args, { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: `${e.stderr ?? ''}${err}`,
    };
  }
}

t.test('units written by install-systemd', async (t) => {
  const analyze = systemdAnalyze();
  if (!requireTool(t, 'systemd-analyze', analyze, HINTS.systemd)) return;
  const inst = installation(t);
  const out = mkdtempSync(join(tmpdir(), 'credd-units-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const runtime = join(out, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', XDG_RUNTIME_DIR: runtime, HOME: inst.dir };

  for (const scope of ['user', 'system'] as const) {
    const dir = join(out, scope);
    const written = await inst.cli(['install-systemd', `--${scope}`, '--output', dir]);
    t.equal(written.code, 0, `install-systemd --${scope}: ${written.stderr}`);
    const file = join(dir, 'eodh-credd.service');
    const unit = readFileSync(file, 'utf8');
    t.match(unit, /^Type=notify$/m, `${scope}: readiness by notification`);
    t.match(unit, /^NotifyAccess=all$/m, `${scope}: systemd-notify children may report`);
    t.notMatch(unit, /^MemoryDenyWriteExecute=yes/m, `${scope}: V8 needs writable executable memory`);

    const verify = await tool(analyze, ['verify', ...(scope === 'user' ? ['--user'] : []), file], env);
    t.equal(verify?.code, 0, `${scope}: systemd-analyze verify exits 0`);
    const complaints = `${verify?.stdout ?? ''}${verify?.stderr ?? ''}`
      .split('\n')
      .filter((line) => line.includes('eodh-credd'));
    t.same(complaints, [], `${scope}: verify has nothing to say about the unit`);
  }

  const systemUnit = join(out, 'system', 'eodh-credd.service');
  const security = await tool(
    analyze,
    ['security', '--offline=true', `--threshold=${MAX_EXPOSURE * 10}`, systemUnit],
    env,
  );
  const level = /Overall exposure level for eodh-credd\.service: ([\d.]+)/.exec(security?.stdout ?? '');
  t.ok(level, 'security prints an overall exposure');
  const exposure = Number(level?.[1]);
  t.ok(exposure <= MAX_EXPOSURE, `system unit exposure ${exposure} ≤ ${MAX_EXPOSURE}`);
  t.equal(security?.code, 0, 'systemd-analyze security --threshold agrees');
  const unit = readFileSync(systemUnit, 'utf8');
  t.match(unit, /^LoadCredentialEncrypted=master-key:/m, 'master key from an encrypted credential');
  t.match(unit, /^StateDirectory=eodh-credd$/m);
  t.match(unit, /^StateDirectoryMode=0700$/m, 'the daemon refuses a data directory others can read');
  t.match(unit, /^ConfigurationDirectory=eodh-credd$/m);
});
