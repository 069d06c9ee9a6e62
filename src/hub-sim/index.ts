export {
  createHubSimulator,
  type HubSimulator,
  type HubSimulatorOptions,
  type StartedHubSimulator,
  startHubSimulator,
  tokenRecord,
} from './app.js';
export { parseHubSimArgs, runHubSim } from './cli.js';
export { type CreateKeyOptions, HubSimulatorClient, type SimKey, type SimTokenInfo } from './client.js';
export { rfc3339Seconds, type S3Answer, type StsOptions } from './credentials.js';
export {
  type Counters,
  FAULT_MODES,
  type Fault,
  type FaultMode,
  HubSimState,
  type Settings,
  type SimToken,
  type Stats,
} from './state.js';
