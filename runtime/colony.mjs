#!/usr/bin/env node
// The `colony` command. Registers the TypeScript loader (workers load .ts task modules), then
// hands over to the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./cli.ts');
await main(process.argv.slice(2));
