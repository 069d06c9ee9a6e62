/**
 * Validation of hub answers. Every field the daemon relies on is checked before anything is
 * built from it, so a broken or hostile answer becomes one error instead of a half-filled
 * credential. Fields the daemon does not use are ignored.
 */
import * as v from 'valibot';
import type { S3Credentials } from '../core/types.js';
import { parseHubTime } from './time.js';

// Every check carries its own message: valibot's default messages quote the value, which may be a secret.
const text = (max: number) =>
  v.pipe(
    v.string('expected a string'),
    v.minLength(1, 'expected a non-empty string'),
    v.maxLength(max, `expected at most ${max} characters`),
  );

/** AWS key material is printable ASCII without spaces; anything else would break the clients. */
const Secret = v.pipe(text(16_384), v.regex(/^[\x21-\x7e]+$/, 'expected printable ASCII without spaces'));

const S3Answer = v.object(
  {
    accessKeyId: Secret,
    secretAccessKey: Secret,
    sessionToken: Secret,
    expiration: text(64),
  },
  'expected an object',
);

const OptionalText = v.nullish(v.string('expected a string or null'));

const TokenAnswer = v.object(
  {
    id: v.union(
      [
        text(512),
        v.pipe(v.number(), v.integer('expected a whole number'), v.minValue(0, 'expected a non-negative whole number')),
      ],
      'expected a string or a whole number',
    ),
    user_id: v.nullish(v.union([v.string(), v.number()], 'expected a string, a number or null')),
    token: OptionalText,
    workspace: OptionalText,
    name: OptionalText,
    scope: OptionalText,
    created: OptionalText,
    expiry: OptionalText,
  },
  'expected an object',
);

type TokenAnswer = v.InferOutput<typeof TokenAnswer>;

/** A workspace API token as the hub lists it, with times in epoch milliseconds. */
export interface TokenRecord {
  /** The hub's token id ("Token ID" in the web UI); numbers are turned into strings. */
  readonly id: string;
  readonly name: string | null;
  readonly scope: string | null;
  readonly workspace: string | null;
  readonly userId: string | null;
  readonly createdAt: number | null;
  readonly expiresAt: number | null;
}

/** A freshly created token: the record plus the API key, which the hub shows only once. */
export type CreatedToken = TokenRecord & { readonly token: string };

/** Thrown by the parsers; the client turns it into a HubError of kind bad_response. */
export class InvalidAnswer extends Error {
  constructor(what: string) {
    super(what);
    this.name = 'InvalidAnswer';
  }
}

/**
 * `body` checked against `schema`; otherwise an InvalidAnswer that says where the first problem is,
 * as a JSON pointer, and what was expected there, never the offending value (it may be a secret).
 */
function check<S extends v.GenericSchema>(schema: S, body: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, body, { abortEarly: true, message: 'is not valid' });
  if (result.success) return result.output;
  const [issue] = result.issues;
  const where = issue.path?.map((item) => `/${String(item.key)}`).join('') || '(top level)';
  // An issue about a key itself rather than its value: a required field is missing.
  const problem = issue.path?.at(-1)?.origin === 'key' ? 'is missing' : issue.message;
  throw new InvalidAnswer(`${what} is not as documented (${where} ${problem})`);
}

export function parseS3Credentials(body: unknown, now: number): S3Credentials {
  const answer = check(S3Answer, body, 'the S3 credentials answer');
  const expiresAt = parseHubTime(answer.expiration, true);
  if (expiresAt === null) {
    throw new InvalidAnswer(
      "the S3 credentials answer has an expiration that is neither an RFC 3339 time with a zone nor Go's time format",
    );
  }
  if (expiresAt <= now) {
    throw new InvalidAnswer("the S3 credentials answer has already expired (check this machine's clock)");
  }
  return {
    accessKeyId: answer.accessKeyId,
    secretAccessKey: answer.secretAccessKey,
    sessionToken: answer.sessionToken,
    expiresAt,
    issuedAt: now,
  };
}

function optionalTime(value: string | null | undefined, field: string): number | null {
  if (value === undefined || value === null) return null;
  const parsed = parseHubTime(value, false);
  if (parsed === null) throw new InvalidAnswer(`a token record has a "${field}" that is not an ISO-8601 time`);
  return parsed;
}

function toRecord(raw: TokenAnswer): TokenRecord {
  return {
    id: String(raw.id),
    name: raw.name ?? null,
    scope: raw.scope ?? null,
    workspace: raw.workspace ?? null,
    userId: raw.user_id === undefined || raw.user_id === null ? null : String(raw.user_id),
    createdAt: optionalTime(raw.created, 'created'),
    expiresAt: optionalTime(raw.expiry, 'expiry'),
  };
}

export function parseTokenRecord(body: unknown): TokenRecord {
  return toRecord(check(TokenAnswer, body, 'a token record'));
}

/** A token list; records that could not be read at all are counted, not fatal (#11). */
export interface TokenList {
  readonly tokens: TokenRecord[];
  /** Records without a usable id: nothing can be done with them, so they are skipped. */
  readonly unreadable: number;
}

/**
 * The token list, read record by record: one record the daemon cannot read does not make the
 * whole list unusable. A record whose id is readable but whose other fields are not keeps its id
 * and name (what orphan clean-up needs); the unreadable fields become null.
 */
export function parseTokenList(body: unknown): TokenList {
  if (!Array.isArray(body)) throw new InvalidAnswer('the token list is not a JSON array');
  const tokens: TokenRecord[] = [];
  let unreadable = 0;
  for (const item of body as unknown[]) {
    const record = readLeniently(item);
    if (record) tokens.push(record);
    else unreadable += 1;
  }
  return { tokens, unreadable };
}

const Id = v.object({ id: TokenAnswer.entries.id });

function readLeniently(item: unknown): TokenRecord | null {
  try {
    return toRecord(check(TokenAnswer, item, 'a token record'));
  } catch {
    const id = v.safeParse(Id, item);
    if (!id.success) return null;
    const raw = item as Record<string, unknown>;
    const str = (value: unknown) => (typeof value === 'string' ? value : null);
    const time = (value: unknown) => (typeof value === 'string' ? parseHubTime(value, false) : null);
    return {
      id: String(id.output.id),
      name: str(raw.name),
      scope: str(raw.scope),
      workspace: str(raw.workspace),
      userId: typeof raw.user_id === 'string' || typeof raw.user_id === 'number' ? String(raw.user_id) : null,
      createdAt: time(raw.created),
      expiresAt: time(raw.expiry),
    };
  }
}

const WorkspaceAnswer = v.object({
  stores: v.nullish(
    v.object({
      object: v.nullish(
        v.array(
          v.object({
            bucket: v.nullish(v.string('expected a string')),
            prefix: v.nullish(v.string('expected a string')),
          }),
          'expected an array',
        ),
      ),
    }),
  ),
});

/** The first object store of GET /api/workspaces/{ws}: bucket and prefix, either possibly null. */
export function parseWorkspaceInfo(body: unknown): { bucket: string | null; prefix: string | null } {
  const answer = check(WorkspaceAnswer, body, 'the workspace answer');
  const store = answer.stores?.object?.find((s) => s.bucket);
  const clean = (value: string | null | undefined) =>
    typeof value === 'string' && value.length > 0 && value.length <= 1024 && /^[\x20-\x7e]+$/.test(value)
      ? value
      : null;
  return { bucket: clean(store?.bucket), prefix: clean(store?.prefix) };
}

export function parseCreatedToken(body: unknown): CreatedToken {
  const record = parseTokenRecord(body);
  const token = (body as TokenAnswer).token;
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    throw new InvalidAnswer('the new token record carries no usable API key in "token"');
  }
  return { ...record, token };
}
