/**
 * `eodh-credd backup FILE` (online: the daemon may run) and `eodh-credd restore FILE` (the daemon
 * stopped). A backup is sealed like the database: it is useless without the master key, and the
 * master key is useless without it, so keep them apart (see README, "Backups").
 */
import { resolve } from 'node:path';
import { EXIT, UserError } from '../core/errors.js';
import { restoreDatabase } from '../store/backup.js';
import { masterKeyLocation, readMasterKey } from '../store/master-key.js';
import { sealingKey } from '../store/seal.js';
import { type CliContext, configOf, print } from './context.js';
import { openStore } from './open-store.js';

function fileArgument(ctx: CliContext, command: string): string {
  const [file, ...rest] = ctx.args;
  if (!file || rest.length > 0 || file.startsWith('-'))
    throw new UserError(`Usage: eodh-credd ${command} FILE`, EXIT.USAGE);
  return resolve(file);
}

export async function runBackup(ctx: CliContext): Promise<number> {
  const file = fileArgument(ctx, 'backup');
  const config = configOf(ctx);
  const store = openStore(config, ctx.env);
  try {
    await store.backupTo(file);
  } finally {
    store.close();
  }
  print(ctx.stdout, `Backup written to ${file} (mode 0600, secrets still sealed).`);
  print(
    ctx.stdout,
    `It opens only with the master key (${masterKeyLocation(config.paths.masterKey, ctx.env)}): keep a copy of the key, stored apart from the backup.`,
  );
  return EXIT.OK;
}

export async function runRestore(ctx: CliContext): Promise<number> {
  const file = fileArgument(ctx, 'restore');
  const config = configOf(ctx);
  const key = sealingKey(readMasterKey(config.paths.masterKey, ctx.env).key);
  const result = restoreDatabase(config.paths, file, key, Date.now());
  print(ctx.stdout, `Restored ${config.paths.database} from ${file} (${result.workspaces} workspaces).`);
  if (result.previous) print(ctx.stdout, `The database it replaced is kept at ${result.previous}.`);
  print(ctx.stdout, 'Start the daemon again: systemctl --user start eodh-credd (or eodh-credd serve).');
  return EXIT.OK;
}
