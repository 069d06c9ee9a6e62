/** `PRAGMA integrity_check` for `eodh-credd doctor`: what SQLite finds wrong, or nothing. */
import type { Database } from 'better-sqlite3';

/** SQLite's own findings, at most `max` of them; empty when the database is sound. */
export function integrityProblems(db: Database, max = 10): string[] {
  const rows = db.pragma(`integrity_check(${Math.max(1, Math.floor(max))})`) as Array<{ integrity_check: string }>;
  const found = rows.map((r) => r.integrity_check);
  return found.length === 1 && found[0] === 'ok' ? [] : found;
}
