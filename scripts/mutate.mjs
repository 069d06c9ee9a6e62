#!/usr/bin/env node
/**
 * Mutation smoke check: `npm run mutate` (not part of CI; a few minutes on two cores).
 *
 * Plants one bug at a time in a COPY of the tree (the working tree is never written), rebuilds
 * the copy, runs the test files that guard that invariant and reports whether they failed
 * (caught) or passed (missed). Exits 1 if any mutant survives, 2 if a mutant no longer applies.
 *
 * Every mutant names the exact source text it replaces, and that text must occur exactly once:
 * when the code has moved, the check stops at once with "pattern not found — update the mutant"
 * rather than quietly testing nothing.
 *
 *   npm run mutate                        # every mutant
 *   npm run mutate -- expiry host         # only mutants whose name contains one of the words
 *   npm run mutate -- --list              # list the mutants
 *   npm run mutate -- --keep              # keep the copy (its path is printed) for a look
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * @typedef {object} Mutant
 * @property {string} name       short id, used to filter
 * @property {string} invariant  what the bug breaks
 * @property {string} file       source file, relative to the repository
 * @property {string} find       exact text, which must occur exactly once in `file`
 * @property {string} replace    what it becomes
 * @property {string[]} tests    test files that must fail
 */

/** @type {Mutant[]} */
const MUTANTS = [
  {
    name: 'expiry-serve-expired',
    invariant: 'an expired credential is never served (hub down, renewal late)',
    file: 'src/scheduler/broker.ts',
    find: 'return best && isServable(best, this.options.clock.now()) ? best : null;',
    replace: 'return best ?? null;',
    tests: ['test/scheduler/broker.test.ts', 'test/scheduler/soak.test.ts'],
  },
  {
    name: 'token-compare-not-constant-time',
    invariant: 'client tokens are compared as digests in constant time',
    file: 'src/scheduler/broker.ts',
    find: 'if (slot && timingSafeEqual(digest, slot.record.clientTokenHash)) {',
    replace: 'if (slot && digest.equals(slot.record.clientTokenHash)) {',
    tests: ['test/security/timing.test.ts'],
  },
  {
    name: 'admin-token-compare-length-only',
    invariant: 'only the admin token opens the admin routes',
    file: 'src/server/guard.ts',
    find: 'digest.length === expected.length && timingSafeEqual(digest, expected)',
    replace: 'digest.length === expected.length',
    tests: ['test/server/guard.test.ts', 'test/security/timing.test.ts'],
  },
  {
    name: 'host-check-any-host',
    invariant: 'only the loopback literals and our port are accepted as Host (DNS rebinding)',
    file: 'src/server/hosts.ts',
    find: 'return hostHeader !== undefined && (this.allowed.has(hostHeader) || this.allowed.has(hostHeader.toLowerCase()));',
    replace: 'return hostHeader !== undefined && this.allowed.size > 0;',
    tests: ['test/server/hosts.test.ts', 'test/server/guard.test.ts'],
  },
  {
    name: 'seal-tag-not-verified',
    invariant: 'a sealed value that was altered never opens (GCM tag checked)',
    file: 'src/store/seal.ts',
    find: 'return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(',
    replace: 'return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES))]).toString(',
    tests: ['test/store/seal.test.ts', 'test/store/store.test.ts'],
  },
  {
    name: 'seal-aad-without-row',
    invariant: 'a sealed value moved to another row does not open (AAD binds table, column, row)',
    file: 'src/store/seal.ts',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
    find: 'return `eodh-credd:${table}:${column}:${rowId}`;',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
    replace: 'return `eodh-credd:${table}:${column}`;',
    tests: ['test/store/seal.test.ts', 'test/store/store.test.ts'],
  },
  {
    name: 'rotation-revoke-right-after-mint',
    invariant: 'the old API key is revoked only once its successor is verified, stored and active',
    file: 'src/scheduler/rotation.ts',
    find: "    await this.step('minted', ws.name);\n",
    replace:
      "    await this.step('minted', ws.name);\n    if (active.tokenId !== null) await hub.deleteToken(ws.name, active.key, active.tokenId);\n",
    tests: ['test/scheduler/rotation.test.ts', 'test/integration/rotation-crash.test.ts'],
  },
  {
    name: 'rotation-revoke-during-renewal',
    invariant: 'a key is never revoked while a renewal uses it',
    file: 'src/scheduler/broker.ts',
    find: '    while (slot.inFlight && slot.inFlightKeyId !== active?.id) await slot.inFlight.catch(() => undefined);\n',
    replace: '\n',
    tests: ['test/scheduler/rotation.test.ts', 'test/scheduler/soak.test.ts'],
  },
  {
    name: 'refusing-request-starts-nothing',
    invariant: 'with nothing servable, a client request starts a hub call at once (#13)',
    file: 'src/scheduler/broker.ts',
    find: "    if (mayStartOnRequest(slot, now) && !slot.keyRejected) return this.renew(name, true, 'urgent');\n",
    replace: '',
    tests: ['test/scheduler/broker-resilience.test.ts'],
  },
  {
    name: 'retry-after-ignored',
    invariant: "the hub's Retry-After sets the workspace's next attempt (#13)",
    file: 'src/scheduler/broker.ts',
    find: '      this.fail(slot, failure, retryAfterOf(err));\n',
    replace: '      this.fail(slot, failure);\n',
    tests: ['test/scheduler/broker-resilience.test.ts'],
  },
  {
    name: 'hub-clock-ignored',
    invariant: 'a credential is never served past its expiry by either clock (#13)',
    file: 'src/scheduler/broker.ts',
    find: 'const expiresAt = localExpiry(fresh.expiresAt, this.hubs.aheadMs(hubUrl));',
    replace: 'const expiresAt = fresh.expiresAt;',
    tests: ['test/scheduler/broker-resilience.test.ts'],
  },
  {
    name: 'log-redaction-off',
    invariant: 'secrets never reach the log (pino redact)',
    file: 'src/log.ts',
    find: "redact: { paths: REDACT_PATHS, censor: '[redacted]' },",
    replace: "redact: { paths: [], censor: '[redacted]' },",
    tests: ['test/log.test.ts', 'test/security/logs.test.ts'],
  },
  {
    name: 'log-redaction-misses-secret-access-key',
    invariant: 'an S3 secret access key nested in a logged object is redacted',
    file: 'src/log.ts',
    find: "  '*.secretAccessKey',\n",
    replace: '',
    tests: ['test/log.test.ts', 'test/security/logs.test.ts'],
  },
];

/** Tracked and untracked (not ignored) files: the tree as it stands, uncommitted edits included. */
function treeFiles() {
  const out = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (out.status !== 0) throw new Error(`git ls-files failed: ${out.stderr}`);
  return out.stdout.split('\0').filter(Boolean);
}

function occurrences(text, find) {
  let n = 0;
  for (let i = text.indexOf(find); i !== -1; i = text.indexOf(find, i + find.length)) n++;
  return n;
}

function run(command, args, cwd, env = {}) {
  const started = Date.now();
  const out = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 256 * 1024 * 1024,
  });
  return {
    code: out.status ?? 1,
    output: `${out.stdout ?? ''}${out.stderr ?? ''}`,
    seconds: (Date.now() - started) / 1000,
  };
}

function main() {
  const args = process.argv.slice(2);
  const keep = args.includes('--keep');
  const words = args.filter((a) => !a.startsWith('--'));
  const chosen = words.length ? MUTANTS.filter((m) => words.some((w) => m.name.includes(w))) : MUTANTS;
  if (args.includes('--list')) {
    for (const m of MUTANTS) console.log(`${m.name.padEnd(40)} ${m.file}: ${m.invariant}`);
    return 0;
  }
  if (chosen.length === 0) {
    console.error(`mutate: no mutant matches ${words.join(', ')} (see --list)`);
    return 2;
  }

  // Every pattern must apply to the tree as it is now, before anything runs.
  let stale = 0;
  for (const m of chosen) {
    const n = occurrences(readFileSync(join(ROOT, m.file), 'utf8'), m.find);
    if (n !== 1) {
      stale++;
      console.error(
        `mutate: ${m.name}: pattern ${n === 0 ? 'not found' : `found ${n} times`} in ${m.file} — update the mutant\n  ${JSON.stringify(m.find)}`,
      );
    }
    for (const test of m.tests) {
      try {
        readFileSync(join(ROOT, test));
      } catch {
        stale++;
        console.error(`mutate: ${m.name}: test file ${test} is gone — update the mutant`);
      }
    }
  }
  if (stale) return 2;

  const copy = mkdtempSync(join(tmpdir(), 'eodh-credd-mutate-'));
  console.log(`mutate: copying the tree to ${copy}`);
  for (const f of treeFiles()) {
    mkdirSync(dirname(join(copy, f)), { recursive: true });
    cpSync(join(ROOT, f), join(copy, f));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  const cleanup = () => {
    if (!keep) rmSync(copy, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });

  const tap = join(ROOT, 'node_modules', '.bin', 'tap');
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
  const build = () => run(tsc, ['-p', 'tsconfig.json'], copy);
  // The tests spawn the built CLI (dist/), so every mutant is built before its tests run.
  const test = (files) => run(tap, ['--disable-coverage', '--reporter=terse', ...files], copy);

  try {
    // The unmutated copy must pass the same tests, or "caught" would mean nothing.
    const allTests = [...new Set(chosen.flatMap((m) => m.tests))];
    const built = build();
    if (built.code !== 0) {
      console.error(`mutate: the unmutated copy does not build:\n${built.output}`);
      return 2;
    }
    console.log(`mutate: baseline: ${allTests.length} test files on the unmutated copy…`);
    const baseline = test(allTests);
    if (baseline.code !== 0) {
      console.error(`mutate: the unmutated copy fails its tests; fix that first:\n${baseline.output.slice(-4000)}`);
      return 2;
    }
    console.log(`mutate: baseline passes (${baseline.seconds.toFixed(0)} s)`);

    const results = [];
    for (const m of chosen) {
      const file = join(copy, m.file);
      const original = readFileSync(file, 'utf8');
      writeFileSync(file, original.replace(m.find, m.replace));
      try {
        const b = build();
        if (b.code !== 0) {
          // A mutant the compiler rejects proves nothing about the tests.
          console.error(`mutate: ${m.name} does not compile — update the mutant:\n${b.output}`);
          return 2;
        }
        const r = test(m.tests);
        const caught = r.code !== 0;
        results.push({ m, caught, seconds: r.seconds });
        console.log(`${caught ? 'caught' : 'MISSED'}  ${m.name} (${r.seconds.toFixed(0)} s): ${m.invariant}`);
      } finally {
        writeFileSync(file, original);
      }
    }

    const missed = results.filter((r) => !r.caught);
    console.log(`\nmutate: ${results.length - missed.length} of ${results.length} planted bugs caught`);
    for (const r of missed) console.log(`  missed: ${r.m.name} in ${r.m.file}; tests run: ${r.m.tests.join(', ')}`);
    return missed.length ? 1 : 0;
  } finally {
    if (keep) console.log(`mutate: the copy is kept at ${copy}`);
    cleanup();
  }
}

process.exitCode = main();
