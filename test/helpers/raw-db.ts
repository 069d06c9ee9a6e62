/** The store's own connection, for tests that inspect or damage the rows behind its back. */
import type { Database } from 'better-sqlite3';
import type { Store } from '../../src/store/store.js';

export function rawDb(store: Store): Database {
  return (store as unknown as { db: Database }).db;
}
