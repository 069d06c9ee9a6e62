/**
 * Validation of hub answers. Every field the daemon relies on is checked before anything is
 * built from it, so a broken or hostile answer becomes one error instead of a half-filled
 * credential. Fields the daemon does not use are ignored.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { S3Credentials } from '../core/types.js';
import { parseTimestamp } from './time.js';

/** AWS key material is printable ASCII without spaces; anything else would break the clients. */
const Secret = Type.String({ minLength: 1, maxLength: 16_384, pattern: '^[\\x21-\\x7e]+$' });

const S3Answer = Type.Object({
  accessKeyId: Secret,
  secretAccessKey: Secret,
  sessionToken: Secret,
  expiration: Type.String({ minLength: 1, maxLength: 64 }),
});

const OptionalText = Type.Optional(Type.Union([Type.String(), Type.Null()]));
const OptionalId = Type.Optional(Type.Union([Type.String(), Type.Number(), Type.Null()]));

const TokenAnswer = Type.Object({
  id: Type.Union([Type.String({ minLength: 1, maxLength: 512 }), Type.Integer({ minimum: 0 })]),
  user_id: OptionalId,
  token: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  workspace: OptionalText,
  name: OptionalText,
  scope: OptionalText,
  created: OptionalText,
  expiry: OptionalText,
});

const TokenListAnswer = Type.Array(Type.Unknown());

type TokenAnswer = Static<typeof TokenAnswer>;

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

/** Where the first schema error is, as a JSON pointer; never the offending value (it may be a secret). */
function firstProblem(schema: Parameters<typeof Value.Errors>[0], value: unknown): string {
  const first = Value.Errors(schema, value).First();
  return first ? `${first.path || '(top level)'} ${first.message.toLowerCase()}` : 'invalid';
}

export function parseS3Credentials(body: unknown, now: number): S3Credentials {
  if (!Value.Check(S3Answer, body)) {
    throw new InvalidAnswer(`the S3 credentials answer is not as documented (${firstProblem(S3Answer, body)})`);
  }
  const expiresAt = parseTimestamp(body.expiration, true);
  if (expiresAt === null) {
    throw new InvalidAnswer('the S3 credentials answer has an expiration that is not an RFC 3339 time with a zone');
  }
  if (expiresAt <= now) {
    throw new InvalidAnswer('the S3 credentials answer has already expired (check this machine\'s clock)');
  }
  return {
    accessKeyId: body.accessKeyId,
    secretAccessKey: body.secretAccessKey,
    sessionToken: body.sessionToken,
    expiresAt,
    issuedAt: now,
  };
}

function optionalTime(value: string | null | undefined, field: string): number | null {
  if (value === undefined || value === null) return null;
  const parsed = parseTimestamp(value, false);
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
  if (!Value.Check(TokenAnswer, body)) {
    throw new InvalidAnswer(`a token record is not as documented (${firstProblem(TokenAnswer, body)})`);
  }
  return toRecord(body);
}

export function parseTokenList(body: unknown): TokenRecord[] {
  if (!Value.Check(TokenListAnswer, body)) throw new InvalidAnswer('the token list is not a JSON array');
  return body.map((item, i) => {
    if (!Value.Check(TokenAnswer, item)) {
      throw new InvalidAnswer(`token record ${i} is not as documented (${firstProblem(TokenAnswer, item)})`);
    }
    return toRecord(item);
  });
}

export function parseCreatedToken(body: unknown): CreatedToken {
  const record = parseTokenRecord(body);
  const token = (body as TokenAnswer).token;
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    throw new InvalidAnswer('the new token record carries no usable API key in "token"');
  }
  return { ...record, token };
}
