// The task module of scripts/measure-startup.mjs: plain JavaScript, so a dist worker loads no loader.
import { task } from 'colony';

export const echo = task(import.meta.url, function echo(x) { return x; });
