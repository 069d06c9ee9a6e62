export { HubClient, parseRetryAfter, type CreateTokenRequest, type HubClientOptions } from './client.js';
export { HubError, isKeyRejected, type HubErrorKind } from './errors.js';
export type { CreatedToken, TokenRecord } from './responses.js';
export { assertHubUrlAllowed } from './url.js';
