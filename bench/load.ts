/**
 * Load generators. `load` drives keep-alive connections with autocannon and counts only 200
 * answers (its own histogram stores whole milliseconds, too coarse for a sub-millisecond p50, so
 * latencies are recorded here from its `response` events). `burst` opens many connections at once
 * and times each answer, for the cold-cache burst.
 */

import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { quantile } from './support.js';

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  /** Run this long… */
  readonly seconds?: number;
  /** …or until this many answers. */
  readonly amount?: number;
  readonly headers?: Record<string, string>;
  /** Rewrites each request (path, headers) before it is sent. */
  readonly setupRequest?: (request: autocannon.Request) => autocannon.Request;
}

export interface LoadResult {
  readonly connections: number;
  readonly seconds: number;
  /** Answers with status 200 per second. */
  readonly rps: number;
  readonly ok: number;
  readonly non200: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Answers collected over one or more load runs against the same server. */
export class Recorder {
  private values = new Float64Array(1 << 16);
  private count = 0;
  ok = 0;
  non200 = 0;
  errors = 0;
  seconds = 0;

  answer(statusCode: number, ms: number): void {
    if (statusCode !== 200) {
      this.non200 += 1;
      return;
    }
    this.ok += 1;
    if (this.count === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.count++] = ms;
  }

  summary(connections: number): LoadResult {
    const sorted = this.values.slice(0, this.count).sort();
    return {
      connections,
      seconds: this.seconds,
      rps: this.ok / this.seconds,
      ok: this.ok,
      non200: this.non200,
      errors: this.errors,
      p50Ms: quantile(sorted, 0.5),
      p99Ms: quantile(sorted, 0.99),
      maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    };
  }
}

/** One autocannon run, its answers added to `recorder`. */
export function drive(options: LoadOptions, recorder = new Recorder()): Promise<Recorder> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.seconds ?? 5 }),
        headers: { accept: 'application/json', ...options.headers },
        ...(options.setupRequest ? { requests: [{ setupRequest: options.setupRequest }] } : {}),
        timeout: 10,
      },
      (err: unknown, result: autocannon.Result) => {
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        recorder.seconds += result.duration;
        recorder.errors += result.errors;
        resolve(recorder);
      },
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      recorder.answer(statusCode, responseTime);
    });
  });
}

export async function load(options: LoadOptions): Promise<LoadResult> {
  return (await drive(options)).summary(options.connections);
}

export interface PacedOptions {
  readonly url: string;
  readonly connections: number;
  /** Requests per second offered in all, spread evenly over time and connections. */
  readonly rate: number;
  readonly seconds: number;
  readonly headers?: Record<string, string>;
}

/**
 * An open-loop load below saturation, for latency: each of `connections` keep-alive connections
 * sends one request every connections/rate seconds, the connections evenly out of phase.
 * (autocannon's own rate option sends each second's requests at once, which measures its bursts.)
 * A request sent late because the previous answer on its connection was late is timed from when
 * it was due, so a stall is not hidden (coordinated omission).
 */
export async function paced(options: PacedOptions, recorder = new Recorder()): Promise<Recorder> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const periodMs = (options.connections / options.rate) * 1000;
  const started = performance.now();
  const endAt = started + options.seconds * 1000;
  const headers = { accept: 'application/json', ...options.headers };
  const one = (): Promise<number> =>
    new Promise((resolve) => {
      const req = request(options.url, { agent, headers, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve(0));
      req.end();
    });
  const connection = async (i: number): Promise<void> => {
    for (let due = started + (i * periodMs) / options.connections; due < endAt; due += periodMs) {
      // Behind (the previous answer came after this request was due): count from when it was due,
      // so a stall shows in full. Otherwise count from sending, not from a timer that fired late.
      const behind = performance.now() > due;
      // Timers may also fire up to a millisecond early: never send before the request is due.
      for (let wait = due - performance.now(); wait > 0; wait = due - performance.now()) await sleep(Math.ceil(wait));
      const sent = performance.now();
      const status = await one();
      if (status === 0) recorder.errors += 1;
      else recorder.answer(status, performance.now() - (behind ? due : sent));
    }
  };
  await Promise.all(Array.from({ length: options.connections }, (_, i) => connection(i)));
  recorder.seconds += (performance.now() - started) / 1000;
  agent.destroy();
  return recorder;
}

export interface BurstResult {
  readonly requests: number;
  readonly statuses: Record<string, number>;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The slowest single answer, from its own request's start. */
  readonly maxMs: number;
  /** From the first request sent to the last answer received. */
  readonly wallMs: number;
}

/** `count` GETs at once, each on its own connection. */
export async function burst(url: string, count: number, headers: Record<string, string>): Promise<BurstResult> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const statuses: Record<string, number> = {};
  const times: number[] = [];
  const started = performance.now();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      let settled = false;
      const done = (status: string): void => {
        if (settled) return;
        settled = true;
        times.push(performance.now() - t0);
        statuses[status] = (statuses[status] ?? 0) + 1;
        resolve();
      };
      const req = request(
        url,
        { agent, headers: { accept: 'application/json', ...headers }, timeout: 10_000 },
        (res) => {
          res.resume();
          res.on('end', () => done(String(res.statusCode)));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
      req.end();
    });
  await Promise.all(Array.from({ length: count }, one));
  const wallMs = performance.now() - started;
  agent.destroy();
  const sorted = times.sort((a, b) => a - b);
  return {
    requests: count,
    statuses,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] ?? NaN,
    wallMs,
  };
}
