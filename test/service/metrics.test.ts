/**
 * The daemon's metrics: counts and gauges as Prometheus scrapes them, and prom-client kept off
 * start-up (loaded by the first scrape).
 */

import { execFile } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import t from 'tap';
import { createMetrics, type MetricsWorkspace } from '../../src/service/metrics.js';

const w = (name: string) => ({ id: `id-${name}`, name, fileSink: null });

const NOW = 1_700_000_000_000;
const clock = { now: () => NOW };

t.test('counts and gauges, with their names, help texts and labels', async (t) => {
  const workspaces: MetricsWorkspace[] = [
    { record: { name: 'a' }, current: { expiresAt: NOW + 3_600_000 }, apiKey: { expiresAt: NOW + 30 * 86_400_000 } },
    { record: { name: 'b' }, current: undefined, apiKey: { expiresAt: null } },
    { record: { name: 'c' }, current: { expiresAt: NOW - 1_234 } },
  ];
  const metrics = createMetrics({ workspaces: () => workspaces, clock, processMetrics: false });
  metrics.served('a');
  metrics.served('a');
  metrics.served('c');
  metrics.renewed(w('a'));
  metrics.rotated(w('c'));
  metrics.failed(w('a'), { code: 'network' });
  metrics.failed(w('c'), { code: 'network' });
  metrics.failed(w('a'), { code: 'forbidden' });
  metrics.failed(w('a'), { code: 'network' });
  t.equal(
    await metrics.render(),
    [
      '# HELP eodh_credd_credentials_served_total S3 credentials handed to clients, per workspace.',
      '# TYPE eodh_credd_credentials_served_total counter',
      'eodh_credd_credentials_served_total{workspace="a"} 2',
      'eodh_credd_credentials_served_total{workspace="c"} 1',
      '',
      '# HELP eodh_credd_renewals_total Successful S3 credential renewals from the hub, per workspace.',
      '# TYPE eodh_credd_renewals_total counter',
      'eodh_credd_renewals_total{workspace="a"} 1',
      '',
      '# HELP eodh_credd_api_key_rotations_total API keys replaced by one this installation minted, per workspace.',
      '# TYPE eodh_credd_api_key_rotations_total counter',
      'eodh_credd_api_key_rotations_total{workspace="c"} 1',
      '',
      '# HELP eodh_credd_renewal_failures_total Failed S3 credential renewals, per workspace and reason (unauthorized, network, ...).',
      '# TYPE eodh_credd_renewal_failures_total counter',
      'eodh_credd_renewal_failures_total{workspace="a",reason="network"} 2',
      'eodh_credd_renewal_failures_total{workspace="c",reason="network"} 1',
      'eodh_credd_renewal_failures_total{workspace="a",reason="forbidden"} 1',
      '',
      '# HELP eodh_credd_s3_credential_expiry_seconds Seconds until the held S3 credential expires (negative once expired), per workspace.',
      '# TYPE eodh_credd_s3_credential_expiry_seconds gauge',
      'eodh_credd_s3_credential_expiry_seconds{workspace="a"} 3600',
      'eodh_credd_s3_credential_expiry_seconds{workspace="c"} -1.2',
      '',
      '# HELP eodh_credd_api_key_expiry_seconds Seconds until the active API key expires, per workspace (absent when the hub did not say).',
      '# TYPE eodh_credd_api_key_expiry_seconds gauge',
      'eodh_credd_api_key_expiry_seconds{workspace="a"} 2592000',
      '',
      '# HELP eodh_credd_workspaces Workspaces the daemon serves.',
      '# TYPE eodh_credd_workspaces gauge',
      'eodh_credd_workspaces 3',
      '',
    ].join('\n'),
  );
  t.equal(metrics.contentType, new Registry().contentType, "prom-client's own content type");
});

t.test('later counts and workspace changes show in later scrapes', async (t) => {
  const workspaces: MetricsWorkspace[] = [{ record: { name: 'a' } }];
  const metrics = createMetrics({ workspaces: () => workspaces, clock, processMetrics: false });
  const [first, same] = await Promise.all([metrics.render(), metrics.render()]);
  t.equal(same, first, 'two scrapes at once');
  t.notMatch(first, /^eodh_credd_credentials_served_total\{/m, 'nothing served yet');
  t.match(first, /^eodh_credd_workspaces 1$/m);

  metrics.served('a');
  metrics.renewed(w('b'));
  workspaces.push({ record: { name: 'b' }, current: { expiresAt: NOW + 60_000 } });
  const second = await metrics.render();
  t.match(second, /^eodh_credd_credentials_served_total\{workspace="a"\} 1$/m);
  t.match(second, /^eodh_credd_renewals_total\{workspace="b"\} 1$/m);
  t.match(second, /^eodh_credd_s3_credential_expiry_seconds\{workspace="b"\} 60$/m);
  t.match(second, /^eodh_credd_workspaces 2$/m);
  metrics.served('a');
  t.match(
    await metrics.render(),
    /^eodh_credd_credentials_served_total\{workspace="a"\} 2$/m,
    'not counted twice by the scrape',
  );
});

t.test('two instances keep their own numbers', async (t) => {
  const one = createMetrics({ workspaces: () => [], clock, processMetrics: false });
  const two = createMetrics({ workspaces: () => [{ record: { name: 'x' } }], clock, processMetrics: false });
  one.served('a');
  await one.render();
  two.served('a');
  two.served('a');
  two.failed(w('a'), { code: 'network' });
  const [a, b] = [await one.render(), await two.render()];
  t.match(a, /^eodh_credd_credentials_served_total\{workspace="a"\} 1$/m);
  t.notMatch(a, /^eodh_credd_renewal_failures_total\{/m);
  t.match(a, /^eodh_credd_workspaces 0$/m);
  t.match(b, /^eodh_credd_credentials_served_total\{workspace="a"\} 2$/m);
  t.match(b, /^eodh_credd_renewal_failures_total\{workspace="a",reason="network"\} 1$/m);
  t.match(b, /^eodh_credd_workspaces 1$/m);
});

t.test('process metrics unless turned off', async (t) => {
  const on = createMetrics({ workspaces: () => [], clock });
  t.match(await on.render(), /^process_resident_memory_bytes \d+$/m);
  const off = createMetrics({ workspaces: () => [], clock, processMetrics: false });
  t.notMatch(await off.render(), /^process_/m);
});

t.test('prom-client is loaded by the first scrape, not by import or counting', async (t) => {
  // A fresh process (this one has prom-client loaded already), on the built module: build first.
  const built = pathToFileURL(fileURLToPath(new URL('../../dist/src/service/metrics.js', import.meta.url))).href;
  const script = `
    import { createRequire } from 'node:module';
    const cache = createRequire(import.meta.url).cache;
    const loaded = () => Object.keys(cache).some((file) => file.includes('/node_modules/prom-client/'));
    const { createMetrics } = await import(${JSON.stringify(built)});
    const metrics = createMetrics({ workspaces: () => [], clock: { now: () => 0 } });
    metrics.served('a');
    const w = { id: 'id-a', name: 'a', fileSink: null };
    metrics.renewed(w);
    metrics.rotated(w);
    metrics.failed(w, { code: 'network' });
    const before = loaded();
    const text = await metrics.render();
    console.log(JSON.stringify({ before, after: loaded(), contentType: metrics.contentType, served: text.includes('{workspace="a"} 1') }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
  t.same(JSON.parse(stdout), {
    before: false,
    after: true,
    contentType: new Registry().contentType,
    served: true,
  });
});
