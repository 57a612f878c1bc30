/** One readable line per event: time, actor, transition, and the key data. */
import type { Envelope } from '../../actors/index.ts';

function short(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'string') return v.length > 60 ? `${v.slice(0, 57)}...` : v;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('name' in o && 'message' in o) return `${o.name}: ${short(o.message)}`;
    return short(JSON.stringify(v));
  }
  return String(v);
}

/** `12:00:01.234  worker/2  #2 worker.ready  registered -> ready  modules=1` */
export function formatEvent(env: Envelope): string {
  const t = new Date(env.at).toISOString().slice(11, 23);
  const data = Object.entries(env.data ?? {})
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${short(v)}`)
    .join(' ');
  const task = typeof env.data?.task === 'string' ? env.data.task.replace(/^.*\//, '') : null;
  const shown = task ? data.replace(/task=\S+/, `task=${task}`) : data;
  return `${t}  ${`${env.kind}/${env.id}`.padEnd(22)} #${String(env.seq).padEnd(3)} ${env.type.padEnd(20)} ${(env.from ?? '∅').padStart(10)} -> ${env.to.padEnd(10)} ${shown}`.trimEnd();
}

/** JSON for export: one envelope per line. */
export function toJsonLine(env: Envelope): string {
  return JSON.stringify(env, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}
