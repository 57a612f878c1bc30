/** The `colony` command line: `main(argv)`; the bin is colony.mjs beside this file. */
export { main } from './cli.ts';
