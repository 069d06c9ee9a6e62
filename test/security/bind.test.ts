/**
 * The daemon listens on loopback only, unless the configuration says otherwise explicitly, and
 * then it warns. Nothing here listens anywhere but loopback: the explicit case binds a TEST-NET
 * address (192.0.2.1, RFC 5737) that no machine has, so the warning is logged and the listen fails.
 */

import t, { type Test } from 'tap';
import { loadConfig } from '../../src/config/load.js';
import { startDaemon } from '../../src/daemon.js';
import { hasIpv6Loopback, requireFeature } from '../helpers/tools.js';
import { memoryLogger } from '../server/fixtures/memory-logger.js';
import { createInstallation } from './fixtures/installation.js';

async function attempt(t: Test, server: string) {
  const inst = await createInstallation(t, { server });
  const { logger, text } = memoryLogger('info');
  try {
    const daemon = await startDaemon({ config: loadConfig({ env: inst.env }), env: inst.env, logger });
    const url = daemon.url;
    await daemon.stop();
    return { started: true as const, url, error: null, log: text(), inst };
  } catch (err) {
    return {
      started: false as const,
      url: null,
      error: err as Error & { exitCode?: number; code?: string },
      log: text(),
      inst,
    };
  }
}

t.test('non-loopback addresses are refused unless allowed explicitly', async (t) => {
  for (const host of ['0.0.0.0', '::', '192.0.2.1', '::ffff:127.0.0.1', 'example.org']) {
    const result = await attempt(t, `host = "${host}"`);
    t.equal(result.started, false, `${host}: refused`);
    t.equal(result.error?.exitCode, 78, `${host}: EX_CONFIG`);
    t.match(
      result.error?.message,
      `${host} is not a loopback address; set server.allow_non_loopback = true`,
      `${host}: says why and how`,
    );
  }
});

async function servedWithoutWarning(t: Test, host: string) {
  const result = await attempt(t, `host = "${host}"`);
  t.equal(result.started, true, `${host}: ${result.error?.message ?? 'started'}`);
  t.notMatch(result.log, 'non-loopback', `${host}: no warning`);
}

t.test('loopback addresses are served', async (t) => {
  for (const host of ['127.0.0.1', 'localhost']) await servedWithoutWarning(t, host);
});

t.test('IPv6 loopback is served', async (t) => {
  if (!requireFeature(t, 'IPv6 loopback (::1)', await hasIpv6Loopback())) return;
  await servedWithoutWarning(t, '::1');
});

t.test('allowed explicitly: a warning before anything listens', async (t) => {
  const result = await attempt(t, 'host = "192.0.2.1"\nallow_non_loopback = true');
  t.match(result.log, /"level":40.*serving on a non-loopback address/, 'warned');
  t.match(result.log, '"host":"192.0.2.1"');
  // No interface has a TEST-NET address, so the listen itself fails; the warning came before it.
  t.equal(result.started, false);
  t.match(result.error?.code, /EADDRNOTAVAIL/);
  // Nothing was left held: the same installation starts on loopback afterwards.
  const config = loadConfig({ env: result.inst.env });
  const loopback = { ...config, server: { ...config.server, host: '127.0.0.1' } };
  const again = await startDaemon({
    config: loopback,
    env: result.inst.env,
    logger: memoryLogger('info').logger,
  }).catch((e: Error) => e);
  t.notOk(again instanceof Error, `the lock was released (${again instanceof Error ? again.message : 'ok'})`);
  if (!(again instanceof Error)) await again.stop();
});
