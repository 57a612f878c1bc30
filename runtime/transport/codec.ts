/**
 * The wire codec: msgpackr with `moreTypes`, so typed arrays, Sets, Dates and bigints round-trip
 * as themselves. Maps round-trip as Maps (keys keep their types). RemoteRef handles travel as their id and are rebound to
 * the decoding process on arrival.
 */
import { Packr, addExtension } from 'msgpackr';

// Plain objects travel as records (their structure inline in each message), which leaves msgpack
// maps free to mean JS Maps: `mapsAsObjects: false` decodes them as Maps, keys keeping their types.
const packr = new Packr({ moreTypes: true, useRecords: true, mapsAsObjects: false } as ConstructorParameters<typeof Packr>[0]);

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

export function encode(value: unknown): Buffer {
  return packr.pack(value);
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
