/**
 * RFC 3339 UTC with a literal "Z" and whole seconds: the one timestamp form every AWS client
 * accepts (JS v3 rejects "+00:00"; botocore needs a zone). Rounded down, so we never claim a
 * credential lives longer than it does.
 */
export function rfc3339(epochMs: number): string {
  return new Date(Math.floor(epochMs / 1000) * 1000).toISOString().replace(/\.000Z$/, 'Z');
}
