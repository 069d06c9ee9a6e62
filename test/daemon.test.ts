/**
 * The daemon in-process: /metrics (content, metrics token only) and reload() (what applies live, what
 * needs a restart). The installation is made with the built CLI, as a user would.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import t from 'tap';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { type Daemon, startDaemon } from '../src/daemon.js';
import { HubSimulatorClient, startHubSimulator } from '../src/hub-sim/index.js';
import { createLogger } from '../src/log.js';
import { addWorkspace, BASE_CONFIG, installation } from './helpers/service.js';

const sim = await startHubSimulator({});
t.teardown(() => sim.close());
const hub = new HubSimulatorClient(sim.url);
const inst = installation(t, { config: '[hub]\nretries = 0\n' });
{
  const init = await inst.cli(['init']);
  if (init.code !== 0) throw new Error(init.stderr);
  await addWorkspace(inst, sim.url, await hub.createKey('ws', { expiresDays: 30 }));
}
const clientToken = readFileSync(join(inst.dataDir, 'tokens', 'ws.token'), 'utf8').trim();

function memoryLogger(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level, format: 'json', destination }), lines };
}

async function start(logger: Logger): Promise<Daemon> {
  const daemon = await startDaemon({ config: loadConfig({ env: inst.env }), env: inst.env, logger });
  t.teardown(() => daemon.stop());
  return daemon;
}

t.test('/metrics: the metrics token on TCP, never the admin token; served, renewals, failures, expiry', async (t) => {
  const { logger } = memoryLogger();
  const daemon = await start(logger);
  t.teardown(() => daemon.stop());
  const get = (path: string, authorization?: string) =>
    fetch(`${daemon.url}${path}`, { headers: authorization ? { authorization } : {} });

  t.equal((await get('/metrics')).status, 401, 'no token: 401');
  t.equal((await get('/metrics', 'not-the-token')).status, 401, 'wrong token: 401');
  t.not((await get('/metrics', clientToken)).status, 200, "a workspace's client token is not the metrics token");
  t.equal((await get('/metrics', inst.adminToken())).status, 401, 'nor is the admin token, on TCP');
  const metricsToken = readFileSync(join(inst.dataDir, 'metrics-token'), 'utf8').trim();

  for (let i = 0; i < 3; i++) t.equal((await get('/v1/workspaces/ws/credentials', clientToken)).status, 200);
  const refresh = () => inst.admin('/v1/admin/workspaces/ws/refresh', 'POST');
  t.equal((await refresh()).status, 200, 'one renewal');
  await hub.setFault('s3_forbidden', { count: 1 });
  t.equal((await refresh()).status, 502, 'one failed renewal');

  t.equal(
    (await get('/metrics', `Bearer ${metricsToken}`)).status,
    200,
    'Bearer <metrics token>, as Prometheus sends it',
  );
  const res = await get('/metrics', metricsToken);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  t.match(text, /^eodh_credd_credentials_served_total\{workspace="ws"\} 3$/m, 'credentials served');
  t.match(text, /^eodh_credd_renewals_total\{workspace="ws"\} 1$/m, 'renewals');
  t.match(
    text,
    /^eodh_credd_renewal_failures_total\{workspace="ws",reason="forbidden"\} 1$/m,
    'failures, with the reason',
  );
  const expiry = Number(/^eodh_credd_s3_credential_expiry_seconds\{workspace="ws"\} ([\d.]+)$/m.exec(text)?.[1]);
  t.ok(expiry > 3_000 && expiry <= 3_600, `seconds until the S3 credential expires (${expiry})`);
  const keyExpiry = Number(/^eodh_credd_api_key_expiry_seconds\{workspace="ws"\} ([\d.]+)$/m.exec(text)?.[1]);
  t.ok(keyExpiry > 29 * 86_400 && keyExpiry <= 30 * 86_400, 'seconds until the API key expires');
  t.match(text, /^eodh_credd_workspaces 1$/m);
  t.match(text, /^process_resident_memory_bytes \d+/m, 'process metrics');
  t.notMatch(text, clientToken, 'no secret in the metrics');
});

t.test('reload(): log level, schedule and broker settings live; listener changes need a restart', async (t) => {
  const { logger, lines } = memoryLogger();
  const daemon = await start(logger);
  const brokerLog = (daemon.broker as unknown as { log: Logger }).log;
  const brokerOptions = (
    daemon.broker as unknown as { options: { requestWaitMs: number; backoff: { initialMs: number } } }
  ).options;
  t.notOk(brokerLog.isLevelEnabled('debug'));
  t.equal(brokerOptions.requestWaitMs, 700, 'default request wait');

  const next = parseConfig(
    `${BASE_CONFIG.replace('port = 0', 'port = 4242')}\n[log]\nlevel = "debug"\n`.replace(
      '[log]\nformat = "json"\n',
      '',
    ) +
      '\n[renewal]\nrequest_wait_ms = 250\nbackoff_initial_ms = 50\nsweep_schedule = "*/3 * * * * *"\n[storage]\ndata_dir = "/elsewhere"\n',
    inst.configFile,
    inst.env,
  );
  const restart = daemon.reload(next);
  t.match(
    restart,
    [/^server\.host\/server\.port \(127\.0\.0\.1:4242\)/, /^storage\.data_dir/, /^log\.format/],
    'what needs a restart',
  );
  t.ok(brokerLog.isLevelEnabled('debug'), "the new level reaches the modules' loggers");
  t.equal(brokerOptions.requestWaitMs, 250, 'the broker sees the new request wait');
  t.equal(brokerOptions.backoff.initialMs, 50, 'and the new backoff');
  t.equal(daemon.config.renewal.sweep_schedule, '*/3 * * * * *');
  t.equal(daemon.config.server.port, 0, 'the config in force keeps the address it listens on');
  t.equal(daemon.config.paths.dataDir, inst.dataDir, 'and its data directory');
  t.equal(daemon.config.log.format, 'json');
  t.equal((await fetch(`${daemon.url}/healthz`)).status, 200, 'still listening');
  t.ok(lines.some((l) => l.msg === 'configuration reloaded'));
  t.equal(lines.filter((l) => String(l.msg).startsWith('configuration change not applied')).length, 3);
});
