#!/usr/bin/env node
/** The eodh-credd executable: the command table lives in commands.ts. */
import { main } from './commands.js';

// Secrets are written to files; make sure nothing we create is ever readable by others.
process.umask(0o077);
const code = await main(process.argv.slice(2), {
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
process.exitCode = code;
