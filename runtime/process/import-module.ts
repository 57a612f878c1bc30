/**
 * Imports a user's module: a task module given to `everywhere()`, a `colony run` script.
 *
 * The compiled runtime runs on plain Node. A TypeScript module (`.ts`, `.mts`, `.cts`) needs the
 * TypeScript loader, registered here on first use only: a worker that loads JavaScript modules
 * never pays for it. The sources (this repository) run under a loader already.
 */
import { fileURLToPath } from 'node:url';

/** Set by whoever registered a TypeScript loader in this process (runtime/cli/load-cli.mjs, here). */
const TS_LOADER = Symbol.for('colony.typescriptLoader');
const TS_FILE = /\.[cm]?tsx?$/;

let registering: Promise<void> | null = null;

/** Whether `url` names a TypeScript file. */
export function isTypeScriptModule(url: string): boolean {
  if (!url.startsWith('file:')) return false;
  return TS_FILE.test(fileURLToPath(url));
}

/** Whether a TypeScript loader already runs in this process. */
function typeScriptLoaderActive(): boolean {
  if ((globalThis as { [TS_LOADER]?: boolean })[TS_LOADER]) return true;
  // This file is TypeScript itself: the sources run under tsx, or vitest.
  if (TS_FILE.test(new URL(import.meta.url).pathname)) return true;
  const flags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  return /(^|[\s=])tsx(\/[\w/.-]*)?(\s|$)/.test(flags);
}

/** Registers tsx once, in whichever process first imports a TypeScript module. */
export function ensureTypeScriptLoader(): Promise<void> {
  if (typeScriptLoaderActive()) return Promise.resolve();
  registering ??= (async () => {
    const { register } = await import('tsx/esm/api');
    register();
    (globalThis as { [TS_LOADER]?: boolean })[TS_LOADER] = true;
  })();
  return registering;
}

/** `import(url)`, with the TypeScript loader first when `url` is a TypeScript file. */
export async function importModule(url: string): Promise<unknown> {
  if (isTypeScriptModule(url)) await ensureTypeScriptLoader();
  return import(url);
}
