/**
 * `eodh-credd rekey`: seal every stored secret under a new master key. The daemon must be stopped
 * (it holds the data directory's lock; rekey takes it too, so neither can start while the other
 * runs). The steps, each durable before the next, and how a crash at any point is finished or
 * undone, are described at finishInterruptedRekey in src/store/master-key.ts: in short, the new
 * key is on disk before the database depends on it, the database switches in one transaction, and
 * the key file is renamed into place last. A master key that systemd provides is refused: it is
 * managed with systemd-creds, outside anything eodh-credd can replace.
 */
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../config/load.js';
import { EXIT, UserError } from '../core/errors.js';
import { openDatabase } from '../store/database.js';
import { StoreError } from '../store/errors.js';
import { createSecretFile, syncDirectory } from '../store/files.js';
import { acquireProcessLock, type ProcessLock } from '../store/lock.js';
import {
  decodeMasterKey,
  generateMasterKey,
  masterKeyLocation,
  pendingKeyFile,
  readMasterKey,
} from '../store/master-key.js';
import { compactDatabase, resealDatabase } from '../store/rekey.js';
import { SealError, sealingKey } from '../store/seal.js';
import { type CliContext, configOf, print } from './context.js';

/** The points a crash test may stop at: after the new key file, inside the transaction, after the commit. */
export type RekeyStep = 'new-key-written' | 'resealed' | 'committed';

export interface RekeyResult {
  readonly oldKeyId: string;
  readonly newKeyId: string;
  readonly values: number;
  readonly keyFile: string;
}

function lockForRekey(lockFile: string): ProcessLock {
  try {
    return acquireProcessLock(lockFile);
  } catch (err) {
    if (err instanceof StoreError && err.kind === 'locked') {
      throw new UserError(
        `eodh-credd is running from ${dirname(lockFile)} (it holds ${lockFile}); stop it first (systemctl --user stop eodh-credd), run "eodh-credd rekey", then start it again. Nothing was changed.`,
        EXIT.TEMPFAIL,
      );
    }
    throw err;
  }
}

/** Step 3: the new key file takes the old one's place. */
function installKey(pending: string, keyFile: string, text: string): void {
  try {
    renameSync(pending, keyFile);
  } catch (err) {
    // Another process opening the store may have finished this step for us (master-key.ts).
    const done =
      (err as NodeJS.ErrnoException).code === 'ENOENT' &&
      existsSync(keyFile) &&
      readFileSync(keyFile, 'utf8').trim() === text;
    if (!done) throw err;
  }
  syncDirectory(dirname(keyFile));
}

export function rekey(config: Config, env: CliContext['env'], onStep?: (step: RekeyStep) => void): RekeyResult {
  const { paths } = config;
  const location = masterKeyLocation(paths.masterKey, env);
  if (location !== paths.masterKey) {
    throw new UserError(
      `The master key comes from a systemd credential (${location}), managed with systemd-creds; rekey only replaces a key file. ` +
        `To rekey: stop the service, decrypt the credential into ${paths.masterKey} (mode 0600), run "eodh-credd rekey" outside the service, ` +
        `encrypt the new ${paths.masterKey} with "systemd-creds encrypt", then delete the file. Nothing was changed.`,
      EXIT.CONFIG,
    );
  }
  if (!existsSync(paths.database)) {
    throw new UserError(`No database at ${paths.database}: run "eodh-credd init" first.`, EXIT.CONFIG);
  }
  const lock = lockForRekey(paths.lock);
  try {
    // Reading the key finishes a previous rekey that stopped after its commit.
    const oldKey = sealingKey(readMasterKey(paths.masterKey, env, paths.database).key);
    const db = openDatabase({ file: paths.database, key: oldKey });
    const pending = pendingKeyFile(paths.masterKey);
    let committed = false;
    try {
      // A master-key.new here is from a rekey that stopped before its commit: the database still
      // opens under the old key (openDatabase just checked), so that key was never used.
      rmSync(pending, { force: true });
      const text = generateMasterKey();
      if (!createSecretFile(pending, text)) throw new Error(`${pending} appeared while rekey was writing it`);
      onStep?.('new-key-written');
      const newKey = sealingKey(decodeMasterKey(text, pending));
      const result = resealDatabase(db, oldKey, newKey, () => onStep?.('resealed'));
      committed = true;
      onStep?.('committed');
      installKey(pending, paths.masterKey, text);
      compactDatabase(db);
      return { oldKeyId: oldKey.id, newKeyId: newKey.id, values: result.values, keyFile: paths.masterKey };
    } catch (err) {
      if (!committed) rmSync(pending, { force: true });
      if (err instanceof SealError) throw new UserError(`Rekey stopped: ${err.message}.`, EXIT.DATAERR);
      throw err;
    } finally {
      db.close();
    }
  } finally {
    lock.release();
  }
}

/** Fault injection for the crash tests: EODH_CREDD_FAILPOINT=rekey:<step> dies by SIGKILL right after that step. */
function failpoint(spec: string | undefined): ((step: RekeyStep) => void) | undefined {
  const wanted = spec?.startsWith('rekey:') ? spec.slice('rekey:'.length) : undefined;
  if (!wanted) return undefined;
  return (step) => {
    if (step === wanted) process.kill(process.pid, 'SIGKILL');
  };
}

export async function run(ctx: CliContext): Promise<number> {
  if (ctx.args.length > 0)
    throw new UserError('Usage: eodh-credd rekey (no arguments; stop the daemon first).', EXIT.USAGE);
  const config = configOf(ctx);
  const result = rekey(config, ctx.env, failpoint(ctx.env.EODH_CREDD_FAILPOINT));
  print(
    ctx.stdout,
    `Re-sealed ${result.values} stored secrets under a new master key (key id ${result.oldKeyId} -> ${result.newKeyId}).`,
  );
  print(ctx.stdout, `Master key: ${result.keyFile} (replaced; the old key opens nothing in the database any more).`);
  print(ctx.stdout, 'Start the daemon again: systemctl --user start eodh-credd (or eodh-credd serve).');
  return 0;
}
