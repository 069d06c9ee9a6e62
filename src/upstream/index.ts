export { type CreateTokenRequest, HubClient, type HubClientOptions, parseRetryAfter } from './client.js';
export { HubError, type HubErrorKind, isKeyRejected } from './errors.js';
export type { CreatedToken, TokenRecord } from './responses.js';
export { assertHubUrlAllowed } from './url.js';
