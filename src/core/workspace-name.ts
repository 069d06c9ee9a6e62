/**
 * Workspace names become URL path segments, file names and AAD strings, so they are held to a
 * strict ASCII pattern: no path tricks ("..", "/"), no unicode confusables, no case folding games.
 * EODH workspace names are DNS-label-like (lower-case letters, digits, hyphens).
 */
export const WORKSPACE_NAME_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';
const workspaceName = new RegExp(WORKSPACE_NAME_PATTERN);

export function isWorkspaceName(value: string): boolean {
  return workspaceName.test(value);
}
