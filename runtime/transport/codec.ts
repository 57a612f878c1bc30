/**
 * The wire codec: msgpackr with `moreTypes`, so typed arrays, Sets, Dates and bigints round-trip
 * as themselves. Maps round-trip as Maps (keys keep their types). RemoteRef handles travel as their id and are rebound to
 * the decoding process on arrival.
 */
import { Packr, addExtension } from 'msgpackr';
import { InvalidArgumentError } from './errors.ts';

/** Thrown by msgpackr's function hook; {@link encode} turns it into an error naming the place. */
const FUNCTION_FOUND = Symbol('function found');

// Plain objects travel as records (their structure inline in each message), which leaves msgpack
// maps free to mean JS Maps: `mapsAsObjects: false` decodes them as Maps, keys keeping their types.
// msgpackr would write a function as nothing (it arrives as `{}` or undefined); its hook for
// functions refuses instead. The hook runs only when a function is met, so sending costs nothing more.
const packr = new Packr({
  moreTypes: true,
  useRecords: true,
  mapsAsObjects: false,
  writeFunction: () => {
    throw FUNCTION_FOUND;
  },
} as ConstructorParameters<typeof Packr>[0]);

/** Binds ref ids decoded from a message to handles of one process. */
export interface RefBinder {
  refHandle(id: string): unknown;
}

let binder: RefBinder | null = null;

/**
 * Registers the class RemoteRef handles are instances of. Called once by the module that defines
 * it (the codec cannot import it: that module needs the codec).
 */
export function registerRefClass<T extends { id: string }>(Class: new (...a: never[]) => T, unbound: (id: string) => T): void {
  addExtension({
    Class: Class as unknown as new () => unknown,
    type: 0x52,
    write: (ref: T) => ref.id,
    read: (id: string) => (binder ? binder.refHandle(id) : unbound(id)),
  });
}

/**
 * Encodes a message. A function anywhere in `value` is refused with an
 * {@link InvalidArgumentError} whose `field` is where it was (`args[0].opts.cb`) and whose `path`
 * holds the same place as keys and indexes.
 */
export function encode(value: unknown): Buffer {
  try {
    return packr.pack(value);
  } catch (e) {
    if (e !== FUNCTION_FOUND) throw e;
    const path = functionPath(value) ?? [];
    throw functionError(path);
  }
}

/** The error for a function found at `path` (keys and indexes from the message's root). */
export function functionError(path: (string | number)[]): InvalidArgumentError {
  const err = new InvalidArgumentError(
    formatPath(path),
    'is a function, and functions cannot be sent to another process (they would arrive as {}). ' +
      'Send data, or call a task: export it with task(import.meta.url, fn) and load it with cluster.everywhere()',
  );
  (err as InvalidArgumentError & { path: (string | number)[] }).path = path;
  return err;
}

/** `['args', 0, 'opts', 'cb']` as `args[0].opts.cb`. */
export function formatPath(path: (string | number)[]): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number' || /^<.*>$/.test(k)) out += `[${k}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(k)) out += out ? `.${k}` : k;
    else out += `[${JSON.stringify(k)}]`;
  }
  return out || 'value';
}

/**
 * Where the first function in `value` is, walking the way msgpackr packs (own enumerable keys,
 * arrays, Map keys and values, Set members, `toJSON` of class instances). Only run once a pack
 * has met a function, so its cost is off the sending path.
 */
function functionPath(value: unknown): (string | number)[] | null {
  const seen = new Set<object>();
  const path: (string | number)[] = [];
  const walk = (v: unknown): boolean => {
    if (typeof v === 'function') return true;
    if (v === null || typeof v !== 'object' || seen.has(v) || ArrayBuffer.isView(v) || v instanceof Date) return false;
    seen.add(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        if (walk(v[i])) return true;
        path.pop();
      }
      return false;
    }
    if (v instanceof Map) {
      let i = 0;
      for (const [k, x] of v) {
        path.push(`<Map key ${i}>`);
        if (walk(k)) return true;
        path.pop();
        path.push(typeof k === 'string' || typeof k === 'number' ? k : `<Map value ${i}>`);
        if (walk(x)) return true;
        path.pop();
        i++;
      }
      return false;
    }
    if (v instanceof Set) {
      let i = 0;
      for (const x of v) {
        path.push(`<Set member ${i++}>`);
        if (walk(x)) return true;
        path.pop();
      }
      return false;
    }
    const o = v as Record<string, unknown> & { toJSON?: () => unknown };
    if (Object.getPrototypeOf(o) !== Object.prototype && typeof o.toJSON === 'function') {
      const j = o.toJSON();
      return j !== o && walk(j);
    }
    for (const k in o) {
      if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
      path.push(k);
      if (walk(o[k])) return true;
      path.pop();
    }
    return false;
  };
  return walk(value) ? path : null;
}

/** Decodes; RemoteRef ids inside are bound to `refs` (decode is synchronous, so this is safe). */
export function decode<T = unknown>(bytes: Uint8Array, refs?: RefBinder): T {
  const prev = binder;
  binder = refs ?? prev;
  try {
    return packr.unpack(bytes) as T;
  } finally {
    binder = prev;
  }
}
