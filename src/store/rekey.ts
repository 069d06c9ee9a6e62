/**
 * Re-sealing every secret in the database under another master key, in one transaction: either
 * every value and the key check move to the new key, or nothing changes. The sealed columns are
 * found from the schema (every column named sealed_*, keyed by its table's one-column primary key,
 * which is the row id in the value's additional data), so a migration that adds one is covered
 * without a change here. The file-side protocol around this lives in master-key.ts.
 */
import type { Database } from 'better-sqlite3';
import { writeKeyCheck } from './database.js';
import { cellAad, keyIdOf, open, SealError, type SealingKey, seal } from './seal.js';

export interface SealedColumn {
  readonly table: string;
  readonly column: string;
  readonly primaryKey: string;
}

const quote = (name: string): string => `"${name.replaceAll('"', '""')}"`;

export function sealedColumns(db: Database): SealedColumn[] {
  const tables = db
    .prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
    .pluck()
    .all() as string[];
  const found: SealedColumn[] = [];
  for (const table of tables) {
    const columns = db.pragma(`table_info(${quote(table)})`) as Array<{ name: string; pk: number }>;
    const sealed = columns.filter((c) => c.name.startsWith('sealed_'));
    if (sealed.length === 0) continue;
    const keys = columns.filter((c) => c.pk > 0);
    if (keys.length !== 1) throw new Error(`table ${table} has sealed columns but no one-column primary key`);
    for (const c of sealed) found.push({ table, column: c.name, primaryKey: keys[0]!.name });
  }
  return found;
}

export interface ResealResult {
  /** How many sealed values were re-sealed (the key check not counted). */
  readonly values: number;
  readonly columns: readonly SealedColumn[];
}

/**
 * Re-seal every value under `to`, and the key check. Every value must open under `from`: one that
 * does not (damaged, or sealed under a third key) aborts the whole transaction with its location.
 * `beforeCommit` runs inside the transaction, after the last write (crash tests).
 */
export function resealDatabase(
  db: Database,
  from: SealingKey,
  to: SealingKey,
  beforeCommit?: () => void,
): ResealResult {
  const columns = sealedColumns(db);
  // Overwritten values are zeroed in their pages, not left as free space.
  db.pragma('secure_delete = ON');
  const values = db
    .transaction(() => {
      let count = 0;
      for (const { table, column, primaryKey } of columns) {
        const rows = db
          .prepare(
            `SELECT ${quote(primaryKey)} AS id, ${quote(column)} AS value FROM ${quote(table)} WHERE ${quote(column)} IS NOT NULL`,
          )
          .all() as Array<{ id: string | number; value: string }>;
        const update = db.prepare(`UPDATE ${quote(table)} SET ${quote(column)} = ? WHERE ${quote(primaryKey)} = ?`);
        for (const row of rows) {
          const aad = cellAad(table, column, String(row.id));
          let plaintext: string;
          try {
            plaintext = open(from, row.value, aad);
          } catch (err) {
            if (!(err instanceof SealError)) throw err;
            const keyId = keyIdOf(row.value);
            throw new SealError(
              `${table}.${column} of row ${row.id} does not open under the current key (${err.reason}${keyId && keyId !== from.id ? `, sealed under key ${keyId}` : ''}); nothing was changed`,
              err.reason,
            );
          }
          update.run(seal(to, plaintext, aad), row.id);
          count++;
        }
      }
      writeKeyCheck(db, to);
      beforeCommit?.();
      return count;
    })
    .immediate();
  return { values, columns };
}

/**
 * Leave no copy of an old envelope in the files: rewrite the database (VACUUM drops free pages
 * holding overwritten values) and empty the WAL. Best effort: a reader holding the WAL open only
 * delays the truncation until the next checkpoint.
 */
export function compactDatabase(db: Database): void {
  db.exec('VACUUM');
  db.pragma('wal_checkpoint(TRUNCATE)');
}
