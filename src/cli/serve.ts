/**
 * `eodh-credd serve`: the daemon in the foreground, as systemd runs it (Type=notify).
 * - READY=1 once the listener is up; STATUS= after each sweep and each renewal, failure or
 *   rotation ("3 workspaces, next renewal in 24 min, 1 needs attention").
 * - SIGTERM/SIGINT stop it gracefully (listener closed, in-flight requests finished, schedule
 *   stopped, database closed) and exit 0; a second signal exits at once.
 * - SIGHUP re-reads the configuration without dropping the listener; an invalid file is logged
 *   and the configuration in force is kept.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { type Daemon, startDaemon } from '../daemon.js';
import { createLogger } from '../log.js';
import { systemdNotifier } from '../service/notify.js';
import { statusLine } from '../service/status-line.js';
import { type CliContext, configOf } from './context.js';

/** Longest graceful stop before giving up (systemd's TimeoutStopSec= in the units is 10 s). */
const STOP_LIMIT_MS = 5_000;

/** The service status line: the same attention rule as `eodh-credd status`. */
function serviceStatus(daemon: Daemon): string {
  return statusLine(daemon.snapshots(), Date.now());
}

export async function run(ctx: CliContext): Promise<number> {
  const config = configOf(ctx);
  const logger = createLogger({ level: config.log.level, format: config.log.format });
  const notifier = systemdNotifier({ env: ctx.env, logger });
  let daemon: Daemon | undefined;
  const report = () => {
    if (daemon) void notifier.status(serviceStatus(daemon));
  };
  daemon = await startDaemon({ config, env: ctx.env, logger, onChange: report });
  const running = daemon;
  // Every handler is in place before readiness is announced: systemd (or a test) may signal the
  // moment READY=1 arrives, and an unhandled SIGHUP would end the process.
  process.on('SIGHUP', () => reload(ctx, running, logger, notifier));
  const finished = new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        logger.flush();
        process.exit(1);
      }
      stopping = true;
      const started = Date.now();
      logger.info({ signal }, 'stopping');
      void notifier.stopping('stopping');
      const force = setTimeout(() => {
        logger.error('graceful stop took too long; exiting');
        logger.flush();
        process.exit(1);
      }, STOP_LIMIT_MS);
      force.unref();
      running.stop().then(
        () => {
          logger.info({ ms: Date.now() - started }, 'stopped');
          logger.flush();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await notifier.ready(serviceStatus(running));
  return finished;
}

function reload(ctx: CliContext, daemon: Daemon, logger: Logger, notifier: ReturnType<typeof systemdNotifier>): void {
  let next: Config;
  try {
    next = configOf(ctx);
  } catch (err) {
    logger.error(
      { error: (err as Error).message },
      'SIGHUP: the new configuration is invalid; keeping the one in force',
    );
    void notifier.status(`${serviceStatus(daemon)} (config reload failed, see the log)`);
    return;
  }
  void notifier.reloading();
  daemon.reload(next);
  void notifier.ready(serviceStatus(daemon));
}
