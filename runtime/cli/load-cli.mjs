// Which copy of the runtime this `colony` process runs, decided once by the files beside this one:
// - the compiled copy (dist/ of an installed package, cli.js here): plain Node, no loader;
// - the sources (this repository, cli.ts here): the TypeScript loader, and the `colony-source`
//   export condition, so that a task module's `import 'colony'` resolves to these same sources.
// Either way a process holds one copy: the CLI and the modules it loads share myid(), the task
// registry and the codec.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

export const compiled = existsSync(new URL('./cli.js', import.meta.url));

/** Where a process records that a TypeScript loader is registered (runtime/process/import-module.ts reads it). */
const TS_LOADER = Symbol.for('colony.typescriptLoader');

/** Adds the `colony-source` condition to every resolution (package.json `exports` lists it first). */
const SOURCE_CONDITION = 'data:text/javascript,' + encodeURIComponent(
  'export async function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, "colony-source"] }); }',
);

/** Imports the CLI (`main(argv)`) of this copy. */
export async function loadCli() {
  if (compiled) return import('./cli.js');
  const tsx = await import('tsx/esm/api');
  tsx.register();
  globalThis[TS_LOADER] = true;
  // Registered last, so it runs first and tsx resolves with the condition added.
  register(SOURCE_CONDITION);
  return import('./cli.ts');
}
