/**
 * Reading a secret: from standard input when it is piped (scripts, `printf %s "$KEY" |`), or from
 * a prompt with echo off on a terminal. Never from argv, where `ps` and shell history see it.
 */

import { EXIT, UserError } from '../core/errors.js';
import type { CliContext } from './context.js';

const MAX_SECRET_BYTES = 16 * 1024;

export async function readSecret(ctx: CliContext, prompt: string): Promise<string> {
  const raw = ctx.stdin.isTTY ? await promptHidden(ctx, prompt) : await readAll(ctx);
  // A key pasted with a trailing space, or from a file with CRLF line ends, is still the key.
  const secret = raw.trim();
  if (secret.length === 0) throw new UserError('No key given on standard input.', EXIT.USAGE);
  if (/[\s\u0000-\u001f\u007f]/.test(secret)) {
    throw new UserError(
      'The key contains spaces or control characters inside it; paste it exactly as the hub showed it.',
      EXIT.DATAERR,
    );
  }
  return secret;
}

async function readAll(ctx: CliContext): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.stdin) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_SECRET_BYTES) throw new UserError('Standard input is far too long to be an API key.', EXIT.DATAERR);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function promptHidden(ctx: CliContext, prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const input = ctx.stdin;
    ctx.stderr.write(prompt);
    let value = '';
    const done = (err?: Error) => {
      input.setRawMode?.(false);
      input.pause();
      input.off('data', onData);
      ctx.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UserError('Cancelled.', EXIT.FAILURE));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    input.setRawMode?.(true);
    input.resume();
    input.on('data', onData);
  });
}
