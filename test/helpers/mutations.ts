// Mutations for the fuzz tests: start from something valid and break it a little,
// the way a noisy link, a buggy firmware or an attacker would, so the fuzzer spends
// its inputs past the first length check instead of on bytes no parser reads far.
import fc from 'fast-check';

/** Values that have broken parsers before: wrong types, edges of integer ranges, hostile names. */
export const HOSTILE_VALUES: readonly unknown[] = [
  '', '..', '../../etc/passwd', 'a\u0000b', '\u0000', '/', 'C:\\x', 'x'.repeat(10_000), '\u00e9', '\ud83d\ude00', '\ufeffA', ' ',
  -1, 0, 1, 1.5, -0.5, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e308, -1e308,
  true, false, null, [], {}, [null], { a: 1 }, '1', '0x10', '1e3', 'NaN', 'null', 'true',
];

export type ByteMutation = { kind: 'flip' | 'set' | 'truncate' | 'insert' | 'delete' | 'u16' | 'u32' | 'u64' | 'append'; pos: number; value: number; bytes: Uint8Array };

const EDGE_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

export const byteMutation: fc.Arbitrary<ByteMutation> = fc.record({
  kind: fc.constantFrom('flip', 'set', 'truncate', 'insert', 'delete', 'u16', 'u32', 'u64', 'append'),
  pos: fc.nat(),
  value: fc.oneof(fc.constantFrom(...EDGE_U32), fc.nat()),
  bytes: fc.uint8Array({ maxLength: 24 }),
});

export const byteMutations = (maxLength = 4): fc.Arbitrary<ByteMutation[]> => fc.array(byteMutation, { maxLength });

/** Applies the mutations in order; positions wrap around the current length. */
export function mutateBytes(input: Uint8Array, mutations: readonly ByteMutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.pos % b.length;
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) b[at] = b[at]! ^ (1 << (m.value % 8));
        break;
      case 'set':
        if (b.length > 0) b[at] = m.value & 0xff;
        break;
      case 'truncate':
        b = b.subarray(0, b.length === 0 ? 0 : m.pos % (b.length + 1));
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + (m.value % 8))]);
        break;
      case 'u16':
        if (b.length >= 2) b.writeUInt16LE(m.value & 0xffff, m.pos % (b.length - 1));
        break;
      case 'u32':
        if (b.length >= 4) b.writeUInt32LE(m.value >>> 0, m.pos % (b.length - 3));
        break;
      case 'u64':
        // Above 2^53 - 1 in the high word, or a plain edge value.
        if (b.length >= 8) {
          const p = m.pos % (b.length - 7);
          b.writeUInt32LE(m.value >>> 0, p);
          b.writeUInt32LE([0x1fffff, 0x200000, 0xffffffff, 0][m.value % 4]!, p + 4);
        }
        break;
      case 'append':
        b = Buffer.concat([b, m.bytes]);
        break;
    }
  }
  return b;
}

export type JsonMutation = { kind: 'replace' | 'delete' | 'add' | 'wrap' | 'stringify'; target: number; key: string; value: unknown };

/** Keys worth adding to a JSON object (toString and valueOf once crashed the custody checks). */
const ADDED_KEYS = ['__proto__', 'constructor', 'toString', 'valueOf', 'extra', 'chain', 'sig', 'size', 'seq', 'serial', 'clipId', 'format', ''];

export const jsonMutation: fc.Arbitrary<JsonMutation> = fc.record({
  kind: fc.constantFrom('replace', 'replace', 'delete', 'add', 'wrap', 'stringify'),
  target: fc.nat(),
  key: fc.oneof(fc.constantFrom(...ADDED_KEYS), fc.string({ maxLength: 8 })),
  value: fc.oneof(fc.constantFrom(...HOSTILE_VALUES), fc.jsonValue({ maxDepth: 2 })),
});

export const jsonMutations = (maxLength = 3): fc.Arbitrary<JsonMutation[]> => fc.array(jsonMutation, { minLength: 1, maxLength });

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number };

function slots(v: unknown, out: Slot[] = []): Slot[] {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push({ parent: v, key: i });
      slots(x, out);
    });
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push({ parent: v as Record<string, unknown>, key: k });
      slots(x, out);
    }
  }
  return out;
}

/** Applies JSON-level mutations to a deep copy of `doc`; returns the copy. */
export function mutateJson(doc: unknown, mutations: readonly JsonMutation[]): unknown {
  const copy = structuredClone(doc);
  for (const m of mutations) {
    const all = slots(copy);
    const objects = [copy, ...all.map((s) => (s.parent as Record<string | number, unknown>)[s.key])].filter((x): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x));
    if (m.kind === 'add') {
      const o = objects[m.target % Math.max(1, objects.length)];
      if (o) Object.defineProperty(o, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
      continue;
    }
    const s = all[m.target % Math.max(1, all.length)];
    if (!s) continue;
    const parent = s.parent as Record<string | number, unknown>;
    if (m.kind === 'replace') parent[s.key] = structuredClone(m.value);
    else if (m.kind === 'wrap') parent[s.key] = [parent[s.key]];
    else if (m.kind === 'stringify') parent[s.key] = typeof parent[s.key] === 'string' ? Number(parent[s.key]) : JSON.stringify(parent[s.key]) ?? null;
    else if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
    else delete parent[s.key];
  }
  return copy;
}
