export {
  createHubSimulator,
  startHubSimulator,
  tokenRecord,
  type HubSimulator,
  type HubSimulatorOptions,
  type StartedHubSimulator,
} from './app.js';
export { HubSimulatorClient, type CreateKeyOptions, type SimKey, type SimTokenInfo } from './client.js';
export { rfc3339Seconds, type S3Answer, type StsOptions } from './credentials.js';
export { runHubSim, parseHubSimArgs } from './cli.js';
export {
  FAULT_MODES,
  HubSimState,
  type Counters,
  type Fault,
  type FaultMode,
  type Settings,
  type SimToken,
  type Stats,
} from './state.js';
