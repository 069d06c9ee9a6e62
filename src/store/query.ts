/**
 * A prepared statement with its parameter and row types, whose failures arrive as StoreError (see
 * errors.ts): the store's SQL is typed where it is written, and callers never see a SqliteError.
 */
import type { Database, RunResult, Statement } from 'better-sqlite3';
import { guardStorage } from './errors.js';

export class Query<Params extends unknown[], Row> {
  private readonly statement: Statement<Params, Row>;

  constructor(
    private readonly db: Database,
    sql: string,
  ) {
    this.statement = guardStorage(db.name, () => db.prepare<Params, Row>(sql) as Statement<Params, Row>);
  }

  run(...params: Params): RunResult {
    return guardStorage(this.db.name, () => this.statement.run(...params));
  }

  get(...params: Params): Row | undefined {
    return guardStorage(this.db.name, () => this.statement.get(...params));
  }

  all(...params: Params): Row[] {
    return guardStorage(this.db.name, () => this.statement.all(...params));
  }
}
