/**
 * Numbered SQL files in the top-level migrations/ folder ("001_initial.sql", …), applied in order,
 * each inside one transaction together with the PRAGMA user_version bump, so a crash leaves the
 * database at a whole version. A database newer than the code is refused, never downgraded.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from 'better-sqlite3';
import { StoreError } from './errors.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** migrations/ sits at the package root, above both src/ and dist/src/. */
export function findMigrationsDir(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'migrations');
    if (existsSync(join(candidate, '001_initial.sql'))) return candidate;
    if (dirname(dir) === dir) throw new Error('migrations folder not found');
  }
}

export function loadMigrations(dir: string = findMigrationsDir()): Migration[] {
  const migrations = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((name) => ({ version: Number(name.slice(0, 3)), name, sql: readFileSync(join(dir, name), 'utf8') }));
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration ${m.name} is out of sequence (expected ${i + 1})`);
  });
  return migrations;
}

export function schemaVersion(db: Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Refuse a database written by a newer eodh-credd before anything touches it. */
export function assertNotNewer(db: Database, file: string, migrations: readonly Migration[]): void {
  const current = schemaVersion(db);
  const latest = migrations.length;
  if (current > latest) {
    throw new StoreError(
      'newer_schema',
      `${file}: the database is at schema version ${current} but this eodh-credd knows only up to ${latest}; upgrade eodh-credd.`,
    );
  }
}

/** Apply every migration newer than the database. Returns how many were applied. */
export function migrate(db: Database, file: string, migrations: readonly Migration[] = loadMigrations()): number {
  assertNotNewer(db, file, migrations);
  const pending = migrations.filter((m) => m.version > schemaVersion(db));
  for (const m of pending) {
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return pending.length;
}
