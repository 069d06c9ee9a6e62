/**
 * Progress for slow steps: on a terminal, one line on stderr saying what we wait for, how long we
 * will wait at most, and how long it has been, redrawn in place and erased when done. In a pipe or
 * a log nothing at all, so scripts read only the answer.
 */
import type { CliContext } from './context.js';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const REDRAW_MS = 100;

export async function withProgress<T>(
  ctx: Pick<CliContext, 'stderr' | 'env'>,
  what: string,
  limitMs: number | undefined,
  work: Promise<T>,
): Promise<T> {
  if (ctx.stderr.isTTY !== true) return work;
  const limit = limitMs === undefined ? '' : ` (up to ${Math.ceil(limitMs / 1000)} s)`;
  if (ctx.env.TERM === 'dumb') {
    // No cursor control: say it once.
    ctx.stderr.write(`${what}${limit}…\n`);
    return work;
  }
  const started = Date.now();
  let frame = 0;
  const draw = () => {
    const seconds = Math.floor((Date.now() - started) / 1000);
    ctx.stderr.write(`\r\u001b[2K${FRAMES[frame++ % FRAMES.length]} ${what}${limit} ${seconds} s`);
  };
  draw();
  const timer = setInterval(draw, REDRAW_MS);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    ctx.stderr.write('\r\u001b[2K');
  }
}
