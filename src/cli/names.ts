/**
 * Workspace names on the command line: checked before anything else happens, and a name that is
 * not configured answered with the configured names that look like it ("did you mean my-ws?").
 */
import { existsSync, readdirSync } from 'node:fs';
import type { Config } from '../config/load.js';
import { EXIT, UserError } from '../core/errors.js';
import { isWorkspaceName } from '../core/workspace-name.js';
import type { CliContext } from './context.js';

export function assertWorkspaceName(name: string | undefined): string {
  if (!name) throw new UserError('Name the workspace.', EXIT.USAGE);
  if (!isWorkspaceName(name)) {
    throw new UserError(
      `"${name}" is not a workspace name: lower-case letters, digits and inner hyphens, at most 63 characters.`,
      EXIT.USAGE,
    );
  }
  return name;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions: "my-sw" is 1 from "my-ws"). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidates close to `name` (the rule commander uses for commands: within 40% of the length), closest first. */
export function similar(name: string, candidates: readonly string[]): string[] {
  const scored = candidates
    .map((c) => ({ c, distance: editDistance(name, c) }))
    .filter(
      ({ c, distance }) => distance > 0 && distance <= Math.max(1, Math.floor(0.4 * Math.max(c.length, name.length))),
    );
  const best = Math.min(...scored.map((s) => s.distance));
  return scored.filter((s) => s.distance === best).map((s) => s.c);
}

/** The "no such workspace" error, with the configured names that look like the one given. */
export function unknownWorkspace(name: string, configured: readonly string[], hint = ''): UserError {
  const close = similar(name, configured);
  const suggestion =
    close.length > 0
      ? ` Did you mean ${close.map((c) => `"${c}"`).join(' or ')}?`
      : configured.length > 0
        ? ` Configured: ${configured.join(', ')}.`
        : '';
  return new UserError(`No workspace "${name}".${suggestion}${close.length > 0 ? '' : hint}`, EXIT.USAGE);
}

/**
 * The configured workspaces, from the database, for a command that failed without opening it
 * (token, credential-process): only on that error path, so the fast path never loads SQLite.
 */
export async function configuredWorkspaces(config: Config, env: CliContext['env']): Promise<string[]> {
  try {
    const { openStore } = await import('./open-store.js');
    const store = openStore(config, env);
    try {
      return store.listWorkspaces().map((w) => w.name);
    } finally {
      store.close();
    }
  } catch {
    // No database yet, or a key that does not open it: the token files still name the workspaces.
    if (!existsSync(config.paths.tokensDir)) return [];
    return readdirSync(config.paths.tokensDir)
      .filter((f) => f.endsWith('.token'))
      .map((f) => f.slice(0, -'.token'.length));
  }
}
