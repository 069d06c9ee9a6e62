/**
 * 6. Command latency (#15): `env`, `status`, `token` and `credential-process` against a running
 * daemon with one workspace, measured with hyperfine (no shell, warm-up runs first) beside
 * `node -e 0` in the same run: the cost of starting Node itself on this machine. The target is
 * each command within 2.5× of it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeS3, seedWorkspaces } from '../seed.js';
import { BenchHome, CLI, spawnDaemon } from '../support.js';

export interface CliOptions {
  readonly runs: number;
  readonly warmup: number;
}

export interface CliRow {
  readonly command: string;
  readonly meanMs: number;
  readonly medianMs: number;
  readonly stddevMs: number;
  /** Mean over `node -e 0`'s mean. */
  readonly ratio: number;
}

export interface CliResult {
  readonly hyperfine: string;
  readonly rows: CliRow[];
}

export const CLI_TARGET_RATIO = 2.5;

export async function cliLatency(options: CliOptions): Promise<CliResult | null> {
  const version = spawnSync('hyperfine', ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) return null;
  const home = BenchHome.create();
  const out = mkdtempSync(join(tmpdir(), 'credd-bench-cli-'));
  try {
    const store = home.openStore();
    const [seeded] = seedWorkspaces(store, {
      count: 1,
      hubUrl: 'http://127.0.0.1:9',
      s3: () => fakeS3(Date.now()),
      paths: home.config.paths,
    });
    store.close();
    const ws = seeded!.name;
    const daemon = await spawnDaemon(home);
    try {
      const node = process.execPath;
      const commands: Array<[string, string]> = [
        ['node -e 0', `${node} -e 0`],
        ['env', `${node} ${CLI} env ${ws}`],
        ['status', `${node} ${CLI} status`],
        ['token', `${node} ${CLI} token ${ws}`],
        ['credential-process', `${node} ${CLI} credential-process ${ws}`],
      ];
      const json = join(out, 'hyperfine.json');
      const run = spawnSync(
        'hyperfine',
        [
          '--shell=none',
          '--warmup',
          String(options.warmup),
          '--runs',
          String(options.runs),
          // status exits 2 when a workspace needs attention (this one's API key cannot be rotated).
          '--ignore-failure',
          '--style',
          'none',
          '--export-json',
          json,
          ...commands.flatMap(([name, command]) => ['--command-name', name, command]),
        ],
        { env: home.env as NodeJS.ProcessEnv, encoding: 'utf8' },
      );
      if (run.status !== 0) throw new Error(`hyperfine failed: ${run.stderr}`);
      const results = (
        JSON.parse(readFileSync(json, 'utf8')) as {
          results: Array<{ command: string; mean: number; median: number; stddev: number }>;
        }
      ).results;
      const base = results[0]!.mean;
      return {
        hyperfine: version.stdout.trim(),
        rows: results.map((r) => ({
          command: r.command,
          meanMs: r.mean * 1000,
          medianMs: r.median * 1000,
          stddevMs: r.stddev * 1000,
          ratio: r.mean / base,
        })),
      };
    } finally {
      await daemon.stop();
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
    home.remove();
  }
}
