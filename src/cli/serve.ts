/**
 * `eodh-credd serve`: the daemon in the foreground. SIGTERM/SIGINT stop it gracefully (listener
 * closed, in-flight requests finished, schedule stopped, database closed); a second signal exits
 * at once.
 */
import { createLogger } from '../log.js';
import { startDaemon } from '../daemon.js';
import { configOf, type CliContext } from './context.js';

export async function run(ctx: CliContext): Promise<number> {
  const config = configOf(ctx);
  const logger = createLogger({ level: config.log.level, format: config.log.format });
  const daemon = await startDaemon({ config, env: ctx.env, logger });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'stopping');
      const force = setTimeout(() => {
        logger.error('graceful stop took too long; exiting');
        process.exit(1);
      }, 5_000);
      force.unref();
      daemon.stop().then(
        () => {
          logger.info('stopped');
          logger.flush();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
