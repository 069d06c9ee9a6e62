/**
 * Response schemas. Fastify serialises only the properties declared here, so a field added to an
 * internal object can never leak into a response by accident.
 */
import { WORKSPACE_NAME_PATTERN } from '../core/workspace-name.js';

export const workspaceParams = {
  type: 'object',
  properties: { workspace: { type: 'string', pattern: WORKSPACE_NAME_PATTERN } },
  required: ['workspace'],
} as const;

export const errorSchema = {
  type: 'object',
  properties: {
    code: { type: 'string' },
    message: { type: 'string' },
    Code: { type: 'string' },
    Message: { type: 'string' },
  },
  required: ['code', 'message', 'Code', 'Message'],
  additionalProperties: false,
} as const;

/** The container-credentials answer, exactly as botocore, JS v3, Go and Ruby read it. */
export const containerCredentialsSchema = {
  type: 'object',
  properties: {
    AccessKeyId: { type: 'string' },
    SecretAccessKey: { type: 'string' },
    Token: { type: 'string' },
    Expiration: { type: 'string' },
    AccountId: { type: 'string' },
  },
  required: ['AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration'],
  additionalProperties: false,
} as const;

export const apiKeySchema = {
  type: 'object',
  properties: {
    workspace: { type: 'string' },
    tokenId: { type: ['string', 'null'] },
    token: { type: 'string' },
    expiry: { type: ['string', 'null'] },
  },
  required: ['workspace', 'tokenId', 'token', 'expiry'],
  additionalProperties: false,
} as const;

export const okSchema = {
  type: 'object',
  properties: { ok: { type: 'boolean' } },
  required: ['ok'],
  additionalProperties: false,
} as const;
