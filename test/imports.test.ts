/**
 * The shape of src/ (#14): no module imports another in a cycle (type-only imports included), so
 * each part can be read, tested and changed from the bottom up. The command table's lazy
 * `import()` of each command (src/cli/definitions.ts) is how a command is loaded when it runs, not
 * a dependency, and is left out.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Static relative imports of a module (`import … from`, `export … from`), as absolute .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/\bfrom\s+'(\.{1,2}\/[^']+)'/g)].map((m) => m[1] as string);
  return specifiers.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

function cycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const found: string[][] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

t.test('no import cycle in src/', async (t) => {
  const files = modules(SRC);
  t.ok(files.length > 50, `${files.length} modules read`);
  const graph = new Map(files.map((f) => [f, importsOf(f)]));
  for (const [file, deps] of graph)
    for (const dep of deps)
      if (!graph.has(dep)) t.fail(`${relative(SRC, file)} imports a missing ${relative(SRC, dep)}`);
  const found = cycles(graph).map((c) => c.map((f) => relative(SRC, f)).join(' -> '));
  t.same(found, [], 'no cycles');
});

t.test('the cycle finder finds one', async (t) => {
  const graph = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
    ['d', ['a']],
  ]);
  t.same(cycles(graph), [['a', 'b', 'c', 'a']]);
});
