/**
 * The build step that writes the man page and the completion scripts into dist/ (package.json
 * "files" ships them; "man" installs the page with `npm install -g`). They are made from the same
 * command table as --help, so they cannot go stale. SOURCE_DATE_EPOCH fixes the man page's date
 * for reproducible builds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bashScript, fishScript, zshScript } from './completion.js';
import { manPage } from './man.js';

const dist = fileURLToPath(new URL('../../', import.meta.url));
const epoch = process.env.SOURCE_DATE_EPOCH;
const date = epoch ? new Date(Number(epoch) * 1000) : new Date();

const outputs: Record<string, string> = {
  'man/eodh-credd.1': manPage(date),
  'completions/eodh-credd.bash': bashScript(),
  'completions/_eodh-credd': zshScript(),
  'completions/eodh-credd.fish': fishScript(),
};
for (const [path, text] of Object.entries(outputs)) {
  const file = `${dist}${path}`;
  mkdirSync(new URL('.', `file://${file}`), { recursive: true });
  writeFileSync(file, text, { mode: 0o644 });
}
