/** `npm run bench`: the whole suite with settings from the environment (see bench/suite.ts). */
import { runBench, settingsFromEnv } from './suite.js';

// Interrupted: exit through process.exit, so the children (daemons, simulator) are killed.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

await runBench(settingsFromEnv(process.env));
// Keep-alive sockets of the load generator must not hold the process open.
process.exit(0);
