/**
 * 1. The hot path: cached GET /v1/workspaces/{ws}/credentials with a valid token and a warm cache,
 * beside the Node ceiling (a bare node:http server answering a constant body of the same size),
 * under the same load generator in the same run. Both servers are child processes; the load
 * generator is this process.
 *
 * Each load is measured in the order ceiling, ours, ours, ceiling (half the time
 * each), so a drift in the machine's load during the run affects both sides alike. Besides
 * requests per second, the CPU time each server process used per answer is read from /proc: on a
 * machine shared with other work that is steadier than a rate.
 */
import { readFile } from 'node:fs/promises';
import { drive, type LoadOptions, type LoadResult, paced, Recorder } from '../load.js';
import { fakeS3, seedWorkspaces } from '../seed.js';
import { BenchHome, get, spawnCeiling, spawnDaemon } from '../support.js';

export interface ThroughputOptions {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly connections: readonly number[];
  /**
   * Also measure latency at 100 connections with this many requests per second offered in all
   * (0 to skip). At saturation a closed loop of N connections waits N / throughput on average
   * (Little's law), so latency targets are only meaningful below saturation.
   */
  readonly offeredRate: number;
  /** Extra node flags for the daemon (e.g. --cpu-prof). */
  readonly daemonNodeArgs?: string[];
}

export interface Measured extends LoadResult {
  /** CPU time (user + system) of the server process per 200 answer, µs. */
  readonly cpuUsPerRequest: number;
}

export interface ThroughputRow {
  readonly connections: number;
  readonly ours: Measured;
  readonly ceiling: Measured;
  /** ours.rps / ceiling.rps */
  readonly ratio: number;
  /** ceiling.cpuUsPerRequest / ours.cpuUsPerRequest */
  readonly cpuRatio: number;
}

export interface ThroughputResult {
  readonly bodyBytes: number;
  readonly rows: ThroughputRow[];
  /** 100 connections at a fixed offered rate. */
  readonly atRate: (ThroughputRow & { readonly offeredRate: number }) | null;
  /** Lines the daemon logged while under load (the hot path should log none). */
  readonly daemonLogLines: number;
}

interface Side {
  readonly options: Omit<LoadOptions, 'connections' | 'seconds'>;
  readonly cpuMs: () => number;
}

async function measure(
  side: Side,
  load: { connections: number; seconds: number; rate?: number },
  recorder: Recorder,
  cpu: { ms: number },
): Promise<void> {
  const before = side.cpuMs();
  if (load.rate) await paced({ ...side.options, ...load, rate: load.rate }, recorder);
  else await drive({ ...side.options, ...load }, recorder);
  cpu.ms += side.cpuMs() - before;
}

/** Ceiling, ours, ours, ceiling: half the time each. */
async function compare(
  ours: Side,
  top: Side,
  connections: number,
  seconds: number,
  rate?: number,
): Promise<ThroughputRow> {
  const rec = { ours: new Recorder(), top: new Recorder() };
  const cpu = { ours: { ms: 0 }, top: { ms: 0 } };
  const load = { connections, seconds: seconds / 2, ...(rate ? { rate } : {}) };
  await measure(top, load, rec.top, cpu.top);
  await measure(ours, load, rec.ours, cpu.ours);
  await measure(ours, load, rec.ours, cpu.ours);
  await measure(top, load, rec.top, cpu.top);
  const o = { ...rec.ours.summary(connections), cpuUsPerRequest: (cpu.ours.ms * 1000) / rec.ours.ok };
  const c = { ...rec.top.summary(connections), cpuUsPerRequest: (cpu.top.ms * 1000) / rec.top.ok };
  return { connections, ours: o, ceiling: c, ratio: o.rps / c.rps, cpuRatio: c.cpuUsPerRequest / o.cpuUsPerRequest };
}

export async function throughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const home = BenchHome.create();
  const store = home.openStore();
  // No hub is needed: the credential is fresh, so nothing is due while we measure.
  const [ws] = seedWorkspaces(store, { count: 1, hubUrl: 'http://127.0.0.1:9', s3: () => fakeS3(Date.now()) });
  store.close();
  const daemon = await spawnDaemon(home, options.daemonNodeArgs);
  let ceiling: Awaited<ReturnType<typeof spawnCeiling>> | undefined;
  try {
    const url = `${daemon.url}/v1/workspaces/${ws!.name}/credentials`;
    const headers = { authorization: ws!.token };
    const first = await get(url, headers);
    if (first.status !== 200) throw new Error(`bench: the daemon answered ${first.status}: ${first.body}`);
    const bodyBytes = Buffer.byteLength(first.body);
    ceiling = await spawnCeiling(bodyBytes);
    const ours: Side = { options: { url, headers }, cpuMs: () => daemon.cpuMs() };
    const top: Side = { options: { url: ceiling.url }, cpuMs: () => ceiling!.cpuMs() };
    if (options.warmupSeconds > 0) {
      for (const side of [ours, top]) await drive({ ...side.options, connections: 10, seconds: options.warmupSeconds });
    }
    const linesBefore = await logLines(daemon.logFile);
    const rows: ThroughputRow[] = [];
    for (const connections of options.connections) rows.push(await compare(ours, top, connections, options.seconds));
    const atRate =
      options.offeredRate > 0
        ? { ...(await compare(ours, top, 100, options.seconds, options.offeredRate)), offeredRate: options.offeredRate }
        : null;
    const daemonLogLines = (await logLines(daemon.logFile)) - linesBefore;
    return { bodyBytes, rows, atRate, daemonLogLines };
  } finally {
    await ceiling?.stop();
    await daemon.stop();
    home.remove();
  }
}

async function logLines(file: string): Promise<number> {
  const text = await readFile(file, 'utf8');
  return text.split('\n').filter(Boolean).length;
}
