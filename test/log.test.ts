/**
 * The logger's output formats, each in a fresh process on the built module (build first): JSON
 * without loading pino-pretty, the human format with it, redaction in both.
 */

import { execFile } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const SECRET = 'S3CR3T-VALUE-that-must-never-appear';
const built = pathToFileURL(fileURLToPath(new URL('../dist/src/log.js', import.meta.url))).href;

/** Logs one line with the given format; stdout is a pipe, not a terminal. */
async function logOnce(format: 'auto' | 'json' | 'pretty') {
  const script = `
    import { createRequire } from 'node:module';
    const cache = createRequire(import.meta.url).cache;
    const { createLogger } = await import(${JSON.stringify(built)});
    const logger = createLogger({ level: 'info', format: ${JSON.stringify(format)} });
    logger.info({ secretAccessKey: ${JSON.stringify(SECRET)} }, 'hello from the logger');
    logger.flush();
    process.stderr.write(JSON.stringify(Object.keys(cache).some((file) => file.includes('/node_modules/pino-pretty/'))));
  `;
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
  return { stdout, prettyLoaded: JSON.parse(stderr) as boolean };
}

t.test('json: one JSON line, pino-pretty not loaded', async (t) => {
  const { stdout, prettyLoaded } = await logOnce('json');
  t.equal(prettyLoaded, false);
  t.match(JSON.parse(stdout) as unknown, {
    msg: 'hello from the logger',
    name: 'eodh-credd',
    secretAccessKey: '[redacted]',
  });
});

t.test('auto with stdout not a terminal: JSON, pino-pretty not loaded', async (t) => {
  const { stdout, prettyLoaded } = await logOnce('auto');
  t.equal(prettyLoaded, false);
  t.match(JSON.parse(stdout) as unknown, { msg: 'hello from the logger' });
});

t.test('pretty: human lines through pino-pretty, still redacted', async (t) => {
  const { stdout, prettyLoaded } = await logOnce('pretty');
  t.equal(prettyLoaded, true);
  t.match(stdout, 'hello from the logger');
  t.throws(() => JSON.parse(stdout) as unknown, 'not JSON');
  t.notMatch(stdout, SECRET);
  t.match(stdout, '[redacted]');
});
