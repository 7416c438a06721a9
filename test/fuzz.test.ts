// Fuzz: every parser that reads bytes from outside the dock, held to properties over
// generated input (fast-check; a failure prints its seed and path, replay it with
// FUZZ_SEED=<seed>). Inputs are mostly valid things broken a little (test/helpers/
// mutations.ts), so they get past the first length check.
//
//   frames     FrameDecoder vs the spec's receiver (test/helpers/frameModel.ts), any chunking
//   messages   every request and answer struct: a typed error, or a value that re-encodes to the bytes read
//   session    the dock's Session and the camera's Endpoint over a scripted peer: settle, never hang
//   custody    parseManifest, ledger lines, sidecars, firmware packages
//
// CI runs about 1.2 × 10^5 inputs; `FUZZ_RUNS=1000000 npx vitest run test/fuzz.test.ts`
// scales every property to that total (the soak does). Cases worth keeping are in
// fixtures/fuzz/cases.json and are replayed first.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DockError } from '../src/errors.js';
import { decodeStruct, encodeStruct, type Field, type Struct } from '../src/protocol/codec.js';
import { FrameDecoder } from '../src/protocol/FrameDecoder.js';
import { encodeFrame, FLAG_RESPONSE, PROTOCOL_MAX_PAYLOAD, type Frame } from '../src/protocol/frame.js';
import { assertClipId, assertSerial, MESSAGES, TRIGGERS, type MessageName, type RequestName } from '../src/protocol/messages.js';
import { Session } from '../src/protocol/Session.js';
import { Endpoint, type Handlers } from '../src/protocol/Endpoint.js';
import { LoopbackTransport } from '../src/hal/LoopbackTransport.js';
import { authMessage, spkiToRawEd25519 } from '../src/protocol/auth.js';
import { packFirmware, parseFirmwarePackage, verifyFirmwarePackage, FIRMWARE_PACKAGE_MAGIC } from '../src/protocol/firmwarePackage.js';
import { canonicalJson } from '../src/custody/canonicalJson.js';
import { computeChain, GENESIS_CHAIN, parseManifest, sealManifest, signManifest, type UnchainedManifest } from '../src/custody/manifest.js';
import { checkLedgerLine, CUSTODY_EVENTS, LEDGER_GENESIS, lineHash, type LedgerEntry } from '../src/custody/Ledger.js';
import { buildSidecar, sidecarShapeProblem } from '../src/custody/sidecar.js';
import { checkClipAgainstSidecar } from '../src/custody/verifyClipFile.js';
import { specFrame, specMaxCandidate, specReceive } from './helpers/frameModel.js';
import { byteMutations, jsonMutations, mutateBytes, mutateJson } from './helpers/mutations.js';
import { GOOD_HELLO, rawFrame, scriptedCamera } from './helpers/scriptedCamera.js';

// ---------------------------------------------------------------------------------------------
// How many inputs: each property has a share of the CI total; FUZZ_RUNS scales them all.

const SHARES = {
  frameStream: 5000,
  frameResync: 2500,
  frameMaxChange: 1500,
  struct: 2800, // per request or answer struct (29 of them)
  names: 12_000,
  sessionAnswers: 300,
  sessionListing: 100,
  sessionRead: 100,
  sessionAuth: 250,
  endpoint: 100,
  manifest: 4000,
  ledgerLine: 4000,
  sidecar: 800,
  firmware: 3000,
} as const;
const STRUCTS = Object.entries(MESSAGES).flatMap(([name, m]) => [
  { label: `${name}.req`, s: m.req as Struct },
  { label: `${name}.res`, s: m.res as Struct },
]);
const CI_TOTAL = Object.entries(SHARES).reduce((n, [k, v]) => n + (k === 'struct' ? v * STRUCTS.length : v), 0);
const FUZZ_RUNS = process.env['FUZZ_RUNS'] ? Number(process.env['FUZZ_RUNS']) : undefined;
if (FUZZ_RUNS !== undefined && !(Number.isInteger(FUZZ_RUNS) && FUZZ_RUNS > 0)) throw new Error(`FUZZ_RUNS must be a positive integer, got ${process.env['FUZZ_RUNS']}`);
const SCALE = FUZZ_RUNS === undefined ? 1 : FUZZ_RUNS / CI_TOTAL;
const SEED = process.env['FUZZ_SEED'] ? Number(process.env['FUZZ_SEED']) : undefined;
/** Per-property run count: its share, scaled. */
const runs = (share: keyof typeof SHARES): number => Math.max(1, Math.round(SHARES[share] * SCALE));
const params = (share: keyof typeof SHARES): { numRuns: number; seed?: number } => ({ numRuns: runs(share), ...(SEED === undefined ? {} : { seed: SEED }) });
/** A long soak must not be cut by vitest's 30 s test timeout. */
const TIMEOUT_MS = FUZZ_RUNS === undefined ? 60_000 : Math.max(60_000, Math.ceil(SCALE * 60_000));

let inputs = 0; // counted inside the predicates: what really ran
const counted = <A extends unknown[]>(fn: (...a: A) => void): ((...a: A) => void) => (...a: A) => {
  inputs++;
  fn(...a);
};
const countedAsync = <A extends unknown[]>(fn: (...a: A) => Promise<void>): ((...a: A) => Promise<void>) => (...a: A) => {
  inputs++;
  return fn(...a);
};

/** The one kind of failure a parser may report: a DockError with one of these codes. */
function expectDockError(err: unknown, ...codes: string[]): asserts err is DockError {
  if (!(err instanceof DockError)) throw new Error(`expected a DockError (${codes.join(' | ')}), got ${err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err)}`);
  if (!codes.includes(err.code)) throw new Error(`expected ${codes.join(' | ')}, got ${err.code}: ${err.message}`);
}

// ---------------------------------------------------------------------------------------------
// Generators

/** A valid value of one codec field, small enough to keep runs fast, edges included. */
function arbField(f: Field): fc.Arbitrary<unknown> {
  switch (f.k) {
    case 'u8':
      return fc.integer({ min: 0, max: 0xff });
    case 'u16':
      return fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0, 0xffff));
    case 'u32':
      return fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 0xffffffff));
    case 'i32':
      return fc.oneof(fc.integer({ min: -0x80000000, max: 0x7fffffff }), fc.constantFrom(-0x80000000, 0x7fffffff));
    case 'u64':
      return fc.oneof(fc.maxSafeNat(), fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 2 ** 32, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER));
    case 'i64':
      return fc.oneof(fc.maxSafeInteger(), fc.constantFrom(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
    case 'bool':
      return fc.boolean();
    case 'str':
      // Any code points, cut to the field's byte limit at a code point boundary.
      return fc.string({ unit: fc.oneof(fc.constant('a'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: Math.min(f.max, 80) }).map((s) => {
        let out = '';
        for (const ch of s) {
          if (Buffer.byteLength(out + ch) > f.max) break;
          out += ch;
        }
        return out;
      });
    case 'bytes':
      return fc.uint8Array({ maxLength: Math.min(f.max, 96) }).map((b) => Buffer.from(b));
    case 'fixed':
      return fc.uint8Array({ minLength: f.n, maxLength: f.n }).map((b) => Buffer.from(b));
    case 'list':
      return fc.array(arbStruct(f.of), { maxLength: Math.min(f.max, 4) });
  }
}

function arbStruct(s: Struct): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, f] of Object.entries(s)) fields[name] = arbField(f);
  return fc.record(fields);
}

function fieldNames(s: Struct, out = new Set<string>()): Set<string> {
  for (const [name, f] of Object.entries(s)) {
    out.add(name);
    if (f.k === 'list') fieldNames(f.of, out);
  }
  return out;
}

/** A valid encoding of `s`, then 0..4 byte mutations of it. */
const arbPayload = (s: Struct): fc.Arbitrary<{ valid: Buffer; payload: Buffer }> =>
  fc.tuple(arbStruct(s), byteMutations()).map(([v, muts]) => {
    const valid = encodeStruct(s, v as never);
    return { valid, payload: mutateBytes(valid, muts) };
  });

/** The parser property for one struct: a typed PROTO_BAD_PAYLOAD naming a field, or a value that re-encodes to the bytes it was read from. */
function checkStruct(s: Struct, payload: Buffer): void {
  let value: Record<string, unknown>;
  try {
    value = decodeStruct(s, payload) as Record<string, unknown>;
  } catch (err) {
    expectDockError(err, 'PROTO_BAD_PAYLOAD');
    expect([...fieldNames(s)]).toContain(err.details['field']);
    return;
  }
  const again = encodeStruct(s, value as never);
  // Trailing bytes are ignored (docs/protocol.md §4.2): what was read is a prefix.
  expect(again.length).toBeLessThanOrEqual(payload.length);
  expect(again.equals(payload.subarray(0, again.length))).toBe(true);
  expect(decodeStruct(s, again)).toEqual(value);
}

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const printable = (min: number, max: number): fc.Arbitrary<string> => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: min, maxLength: max });

const arbManifest: fc.Arbitrary<UnchainedManifest> = fc
  .record({
    serial: fc.stringMatching(/^[A-Z0-9][A-Z0-9-]{2,31}$/),
    model: printable(0, 64),
    firmware: printable(0, 32),
    clipId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/),
    seq: fc.integer({ min: 1, max: 0xffffffff }),
    officerId: printable(0, 64),
    startMs: fc.maxSafeNat(),
    lengthMs: fc.nat(),
    durationMs: fc.integer({ min: 0, max: 0xffffffff }),
    preEventS: fc.integer({ min: 0, max: 600 }),
    trigger: fc.constantFrom(...TRIGGERS),
    gps: fc.option(fc.record({ latE7: fc.integer({ min: -900000000, max: 900000000 }), lonE7: fc.integer({ min: -1800000000, max: 1800000000 }), accuracyM: fc.integer({ min: 0, max: 100000 }) }), { nil: null }),
    container: fc.constantFrom('mp4' as const, 'bin' as const),
    size: fc.maxSafeNat(),
    sha256: hex64,
    prevChain: fc.oneof(fc.constant(GENESIS_CHAIN), hex64),
  })
  .map(({ lengthMs, ...m }) => ({ format: 'dockside-manifest-v1' as const, ...m, endMs: Math.min(Number.MAX_SAFE_INTEGER, m.startMs + lengthMs) }));

/** A JSON document serialised canonically when it can be (so it reaches the deeper checks), else as JSON.stringify gives it. */
function serialise(doc: unknown, canonical: boolean): string {
  if (canonical) {
    try {
      return canonicalJson(doc);
    } catch {
      // floats, non-ASCII: no canonical form
    }
  }
  return JSON.stringify(doc) ?? 'null';
}

const ledgerKey = generateKeyPairSync('ed25519');
const otherKey = generateKeyPairSync('ed25519');

function signedLine(body: Omit<LedgerEntry, 'sig'>, key: KeyObject = ledgerKey.privateKey): string {
  const sig = sign(null, Buffer.from(canonicalJson(body)), key).toString('base64');
  return canonicalJson({ ...body, sig });
}

const asciiValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, printable(0, 12), fc.maxSafeInteger(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(printable(1, 6), tie('v'), { maxKeys: 3 })),
})).v;

const arbLedgerBody: fc.Arbitrary<Omit<LedgerEntry, 'sig'>> = fc.record({
  v: fc.constant(1 as const),
  seq: fc.integer({ min: 1, max: 1_000_000 }),
  timeMs: fc.maxSafeNat(),
  event: fc.constantFrom(...CUSTODY_EVENTS),
  serial: fc.option(fc.stringMatching(/^[A-Z0-9][A-Z0-9-]{2,31}$/), { nil: null }),
  clipId: fc.option(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/), { nil: null }),
  details: fc.dictionary(printable(1, 8), asciiValue, { maxKeys: 4 }) as fc.Arbitrary<LedgerEntry['details']>,
  prev: fc.oneof(fc.constant(LEDGER_GENESIS), hex64),
});

// ---------------------------------------------------------------------------------------------
// Regression cases kept from earlier runs (fixtures/fuzz/cases.json), replayed first.

interface Case {
  parser: string; // "struct:<MESSAGE>.<req|res>", "manifest", "firmware", "name:clipId", "name:serial"
  hex?: string;
  text?: string;
  expect: string; // "ok" or the DockError code
  why: string;
}
const cases = JSON.parse(readFileSync(new URL('../fixtures/fuzz/cases.json', import.meta.url), 'utf8')) as Case[];

function runCase(c: Case): string {
  const bytes = c.hex !== undefined ? Buffer.from(c.hex, 'hex') : Buffer.from(c.text ?? '', 'latin1');
  try {
    if (c.parser.startsWith('struct:')) {
      const found = STRUCTS.find((x) => x.label === c.parser.slice(7));
      if (!found) throw new Error(`no struct ${c.parser}`);
      checkStruct(found.s, bytes);
      decodeStruct(found.s, bytes);
    } else if (c.parser === 'manifest') parseManifest(bytes);
    else if (c.parser === 'firmware') parseFirmwarePackage(bytes);
    else if (c.parser === 'name:clipId') assertClipId(bytes.toString('utf8'));
    else if (c.parser === 'name:serial') assertSerial(bytes.toString('utf8'));
    else throw new Error(`unknown parser ${c.parser}`);
    return 'ok';
  } catch (err) {
    if (err instanceof DockError) return err.code;
    throw err;
  }
}

describe('frame corpus (fixtures/frames) against the spec receiver', () => {
  const dir = new URL('../fixtures/frames/', import.meta.url);
  const frameCases = JSON.parse(readFileSync(new URL('corpus.json', dir), 'utf8')) as { file: string }[];
  it('every file: the same frames and discards as the receiver of §2.6, however it is split', () => {
    for (const { file } of frameCases) {
      const bytes = readFileSync(new URL(file, dir));
      const model = specReceive(bytes, 65536);
      for (const step of [bytes.length, 1, 7, 254]) {
        inputs++;
        const frames: Frame[] = [];
        const discards: [string, number][] = [];
        const dec = new FrameDecoder({ onFrame: (f) => frames.push(f), onDiscard: (r, n) => discards.push([r, n]) }, 65536);
        for (let i = 0; i < bytes.length; i += step) dec.push(bytes.subarray(i, i + step));
        expect({ file, frames: frames.map(frameView), discards }).toEqual({ file, frames: model.frames, discards: model.discards });
      }
    }
  });
});

describe('fuzz corpus (fixtures/fuzz/cases.json)', () => {
  it('has cases for every kind of parser', () => {
    const kinds = new Set(cases.map((c) => c.parser.split(':')[0]));
    expect([...kinds].sort()).toEqual(['firmware', 'manifest', 'name', 'struct']);
  });
  for (const c of cases) {
    it(`${c.parser}: ${c.why} → ${c.expect}`, () => {
      inputs++;
      expect(runCase(c)).toBe(c.expect);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Frames

/** A stream made of pieces: good frames, frames that lie, broken frames, noise, long runs, fill. */
const arbPiece = (maxPayload: number): fc.Arbitrary<Buffer> => {
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: Math.min(maxPayload + 2, 600) }),
    fc.constantFrom(Math.max(0, maxPayload - 1), maxPayload, maxPayload + 1).map((n) => new Uint8Array(n).fill(0x5a)),
  );
  const frame = fc.record({
    version: fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 255 })),
    type: fc.integer({ min: 0, max: 255 }),
    flags: fc.integer({ min: 0, max: 255 }),
    reserved: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    payload,
    lengthField: fc.option(fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constant(0xffffffff)), { nil: undefined, freq: 8 }),
    crcXor: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined, freq: 8 }),
  });
  return fc.oneof(
    { weight: 5, arbitrary: frame.map((f) => specFrame(f)) },
    { weight: 3, arbitrary: fc.tuple(frame, byteMutations(3)).map(([f, m]) => mutateBytes(specFrame(f), m)) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: specMaxCandidate(maxPayload) * 2 + 4 }).map((n) => Buffer.alloc(n, 0x11)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((n) => Buffer.alloc(n)) },
  );
};

const arbStream = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(0, 16, 253, 254, 255, 4096)).chain((maxPayload) =>
  fc.record({ maxPayload: fc.constant(maxPayload), pieces: fc.array(arbPiece(maxPayload), { maxLength: 10 }), cuts: fc.array(fc.nat(), { maxLength: 12 }) }),
);

/** Splits `b` at the given points (any order, any repeats: empty chunks included). */
function chunks(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...cuts.map((c) => (b.length === 0 ? 0 : c % (b.length + 1))), 0, b.length].sort((x, y) => x - y);
  const out: Buffer[] = [];
  for (let i = 1; i < at.length; i++) out.push(b.subarray(at[i - 1]!, at[i]!));
  return out;
}

const frameView = (f: Frame) => ({ version: f.version, type: f.type, flags: f.flags, seq: f.seq, payload: Buffer.from(f.payload).toString('hex') });

describe('fuzz: frame decoder', () => {
  it(
    'any stream, split anywhere: exactly the frames and discards of the spec receiver (§2.6), never more buffered than Emax',
    () => {
      fc.assert(
        fc.property(
          arbStream,
          counted(({ maxPayload, pieces, cuts }) => {
            const stream = Buffer.concat(pieces);
            const frames: Frame[] = [];
            const discards: [string, number][] = [];
            const dec = new FrameDecoder({ onFrame: (f) => frames.push(f), onDiscard: (r, n) => discards.push([r, n]) }, maxPayload);
            const emax = specMaxCandidate(maxPayload);
            for (const c of chunks(stream, cuts)) {
              dec.push(c);
              expect(dec.bufferedBytes).toBeLessThanOrEqual(emax);
            }
            const model = specReceive(stream, maxPayload);
            expect(frames.map(frameView)).toEqual(model.frames);
            expect(discards).toEqual(model.discards);
            expect(dec.bufferedBytes).toBe(model.held);
            expect(dec.stats).toMatchObject({ frames: model.frames.length, discarded: model.discards.length, discardedBytes: model.discards.reduce((n, [, b]) => n + b, 0) });
            // Every frame handed on owns its memory (a consumer may keep it): reusing the input buffers changes nothing.
            stream.fill(0xee);
            expect(frames.map(frameView)).toEqual(model.frames);
          }),
        ),
        params('frameStream'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'resynchronises: after any garbage, the next well-formed frame comes out intact',
    () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 2000 }),
          fc.record({ type: fc.integer({ min: 0, max: 255 }), flags: fc.integer({ min: 0, max: 255 }), seq: fc.integer({ min: 0, max: 0xffffffff }), payload: fc.uint8Array({ maxLength: 512 }) }),
          fc.array(fc.nat(), { maxLength: 6 }),
          counted((garbage, f, cuts) => {
            const frames: Frame[] = [];
            const dec = new FrameDecoder({ onFrame: (x) => frames.push(x) }, 1024);
            const good = encodeFrame({ ...f, payload: Buffer.from(f.payload) });
            for (const c of chunks(Buffer.concat([Buffer.from(garbage), good]), cuts)) dec.push(c);
            expect(frames.length).toBeGreaterThan(0);
            expect(frameView(frames.at(-1)!)).toEqual({ version: 1, type: f.type, flags: f.flags, seq: f.seq, payload: Buffer.from(f.payload).toString('hex') });
            expect(dec.bufferedBytes).toBe(0);
          }),
        ),
        params('frameResync'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'a maximum payload changed mid-stream (after HELLO): never throws, the bound follows it, frames come out whole and within it',
    () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(arbPiece(300), fc.option(fc.oneof(fc.integer({ min: 0, max: 600 }), fc.constant(PROTOCOL_MAX_PAYLOAD)), { nil: undefined })), { maxLength: 10 }),
          fc.integer({ min: 0, max: 600 }),
          counted((steps, initial) => {
            const frames: Frame[] = [];
            const dec = new FrameDecoder({ onFrame: (x) => frames.push(x) }, initial);
            let sent = Buffer.alloc(0);
            for (const [piece, max] of steps) {
              if (max !== undefined) dec.setMaxPayload(max);
              const before = frames.length;
              dec.push(piece);
              sent = Buffer.concat([sent, piece]);
              expect(dec.bufferedBytes).toBeLessThanOrEqual(specMaxCandidate(dec.maxPayload));
              for (const f of frames.slice(before)) expect(f.payload.length).toBeLessThanOrEqual(dec.maxPayload);
            }
            // Whatever came out was a frame intact on the wire (the spec receiver, with no size limit, finds it too).
            const intact = new Set(specReceive(sent, PROTOCOL_MAX_PAYLOAD).frames.map((f) => JSON.stringify(f)));
            for (const f of frames) expect(intact.has(JSON.stringify(frameView(f)))).toBe(true);
          }),
        ),
        params('frameMaxChange'),
      );
    },
    TIMEOUT_MS,
  );
});

// ---------------------------------------------------------------------------------------------
// Message payloads

describe('fuzz: every message parser (requests and answers)', () => {
  for (const { label, s } of STRUCTS) {
    it(
      `${label}: a PROTO_BAD_PAYLOAD naming a field, or a value that re-encodes to the bytes read`,
      () => {
        fc.assert(
          fc.property(
            fc.oneof({ weight: 4, arbitrary: arbPayload(s).map((p) => p.payload) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) }),
            counted((payload) => checkStruct(s, payload)),
          ),
          params('struct'),
        );
      },
      TIMEOUT_MS,
    );
  }

  it(
    'names from a camera (clip ids, serials): refused with PROTO_BAD_NAME, or safe as one path segment under any directory',
    () => {
      const base = resolve('/data/spool/SERIAL');
      const name = fc.oneof(
        fc.string({ maxLength: 70 }),
        fc.string({ unit: fc.constantFrom('.', '/', '\\', '\u0000', 'a', 'A', '0', '-', '_', ' ', '%', '\u2024', '\uff0e'), maxLength: 12 }),
        fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,70}$/),
        fc.stringMatching(/^[A-Z0-9][A-Z0-9-]{0,40}$/),
      );
      fc.assert(
        fc.property(
          name,
          counted((n) => {
            for (const check of [assertClipId, assertSerial]) {
              let ok: string;
              try {
                ok = check(n);
              } catch (err) {
                expectDockError(err, 'PROTO_BAD_NAME');
                expect(String(err.details['clipId'] ?? err.details['serial']).length).toBeLessThanOrEqual(80);
                continue;
              }
              expect(ok).toBe(n);
              expect(n).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/);
              const p = resolve(base, `${n}.part`);
              expect(p.startsWith(base + sep)).toBe(true);
              expect(join(base, `${n}.mp4`).split(sep).slice(0, -1).join(sep)).toBe(base);
            }
          }),
        ),
        params('names'),
      );
    },
    TIMEOUT_MS,
  );
});

// ---------------------------------------------------------------------------------------------
// Sessions over a scripted peer: settle with a value or a DockError, never hang

const SETTLE_LIMIT_MS = 3000;

async function settles<T>(p: Promise<T>, what: string): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle within ${SETTLE_LIMIT_MS} ms`)), SETTLE_LIMIT_MS);
  });
  try {
    return { value: await Promise.race([p, hang]) };
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('HANG:')) throw error;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

const REQUESTS = (Object.keys(MESSAGES) as MessageName[]).filter((n): n is RequestName => n !== 'ERROR' && n !== 'HELLO');

/** How a scripted camera answers a request: a (mutated) answer of the right type, an ERROR, a wrong type, a request-flagged frame, noise, or nothing. */
const arbAnswerFor = (name: RequestName) =>
  fc.oneof(
    { weight: 6, arbitrary: arbPayload(MESSAGES[name].res as Struct).map((p) => ({ kind: 'answer' as const, payload: p.payload })) },
    { weight: 2, arbitrary: arbPayload(MESSAGES.ERROR.res as Struct).map((p) => ({ kind: 'error' as const, payload: p.payload })) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((type) => ({ kind: 'type' as const, type })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'request-flag' as const }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ kind: 'noise' as const, payload: Buffer.from(b) })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'silence' as const }) },
  );

type Answer = ReturnType<typeof arbAnswerFor> extends fc.Arbitrary<infer A> ? A : never;

function wire(name: RequestName, seq: number, a: Answer): Buffer | Buffer[] {
  switch (a.kind) {
    case 'answer':
      return rawFrame(MESSAGES[name].type, seq, a.payload);
    case 'error':
      return rawFrame(MESSAGES.ERROR.type, seq, a.payload);
    case 'type':
      return rawFrame(a.type, seq, Buffer.alloc(4));
    case 'request-flag':
      return rawFrame(MESSAGES[name].type, seq, Buffer.alloc(4), 4, 0);
    case 'noise':
      return Buffer.concat([Buffer.from([0]), a.payload.map((b) => b || 1), Buffer.from([0])]);
    case 'silence':
      return [];
  }
}

const FAST = { timeoutMs: 15, retries: 1 };

describe('fuzz: the dock session against a scripted camera', () => {
  it(
    'every request: resolves with an answer that re-encodes, or rejects with a DockError; never hangs',
    async () => {
      const arb = fc.constantFrom(...REQUESTS).chain((name) => fc.record({ name: fc.constant(name), req: arbStruct(MESSAGES[name].req as Struct), answers: fc.array(arbAnswerFor(name), { minLength: 1, maxLength: 3 }) }));
      await fc.assert(
        fc.asyncProperty(
          arb,
          countedAsync(async ({ name, req, answers }) => {
            const { dock } = scriptedCamera((n, f, attempt) => (n === name ? wire(name, f.seq, answers[Math.min(attempt, answers.length) - 1]!) : null));
            const s = await Session.connect(dock, FAST);
            try {
              const r = await settles(s.request(name, req as never), name);
              if ('error' in r) expectDockError(r.error, 'PROTO_BAD_PAYLOAD', 'PROTO_REMOTE', 'PROTO_UNEXPECTED', 'PROTO_TIMEOUT');
              else expect(() => encodeStruct(MESSAGES[name].res as Struct, r.value as never)).not.toThrow();
              // The session survives whatever came: the next request is still served.
              expect(s.closed).toBe(false);
            } finally {
              await s.close();
            }
          }),
        ),
        params('sessionAnswers'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'HELLO and AUTH: a refusal with a DockError unless the camera proves the key it shows',
    async () => {
      const camKey = generateKeyPairSync('ed25519');
      const camRaw = spkiToRawEd25519(camKey.publicKey.export({ type: 'spki', format: 'der' }));
      const arb = fc.record({
        hello: fc.oneof(fc.constant(undefined), arbPayload(MESSAGES.HELLO.res as Struct).map((p) => p.payload)),
        auth: fc.oneof(
          { weight: 2, arbitrary: fc.constant('valid' as const) },
          { weight: 1, arbitrary: fc.constant('other-serial' as const) },
          { weight: 3, arbitrary: arbPayload(MESSAGES.AUTH.res as Struct).map((p) => p.payload) },
        ),
        expect: fc.boolean(),
      });
      await fc.assert(
        fc.asyncProperty(
          arb,
          countedAsync(async ({ hello, auth, expect: withExpected }) => {
            let serial = GOOD_HELLO.serial;
            const { dock } = scriptedCamera((n, f) => {
              if (n === 'HELLO' && hello) return rawFrame(MESSAGES.HELLO.type, f.seq, hello);
              if (n !== 'AUTH') return null;
              const { nonce } = decodeStruct(MESSAGES.AUTH.req, f.payload);
              if (typeof auth !== 'string') return rawFrame(MESSAGES.AUTH.type, f.seq, auth);
              const signature = sign(null, authMessage(auth === 'valid' ? serial : 'OTHER-SERIAL', Buffer.from(nonce)), camKey.privateKey);
              return rawFrame(MESSAGES.AUTH.type, f.seq, encodeStruct(MESSAGES.AUTH.res, { publicKey: camRaw, signature }));
            });
            const connected = await settles(Session.connect(dock, FAST), 'HELLO');
            if ('error' in connected) {
              expectDockError(connected.error, 'PROTO_BAD_PAYLOAD', 'PROTO_BAD_NAME', 'PROTO_VERSION', 'PROTO_UNEXPECTED', 'PROTO_TIMEOUT');
              return;
            }
            const s = connected.value!;
            serial = s.serial;
            try {
              const r = await settles(s.authenticate(withExpected ? camRaw : undefined), 'AUTH');
              if (auth === 'valid') expect(r.value).toEqual(camRaw);
              else if ('error' in r) expectDockError(r.error, 'PROTO_AUTH', 'PROTO_BAD_PAYLOAD', 'PROTO_TIMEOUT');
              else throw new Error(`AUTH accepted an answer that proves nothing: ${typeof auth === 'string' ? auth : auth.toString('hex')}`);
            } finally {
              await s.close();
            }
          }),
        ),
        params('sessionAuth'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'LIST_CLIPS paging: every id handed on is safe, refusals are PROTO_BAD_NAME, a failure is a DockError; never hangs',
    async () => {
      const entry = fc.record({
        id: fc.oneof(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/), fc.constantFrom('../x', 'a\u0000b', '.', 'x.mp4', '', 'a/b', 'CON')),
        seq: fc.integer({ min: 0, max: 0xffffffff }),
        size: fc.maxSafeNat(),
        startMs: fc.maxSafeNat(),
        durationMs: fc.integer({ min: 0, max: 0xffffffff }),
        trigger: fc.integer({ min: 0, max: 255 }),
        released: fc.boolean(),
      });
      const page = fc.tuple(fc.record({ clips: fc.array(entry, { maxLength: 5 }), more: fc.boolean(), next: fc.integer({ min: 0, max: 0xffffffff }) }), byteMutations(1), fc.boolean());
      await fc.assert(
        fc.asyncProperty(
          fc.array(page, { minLength: 1, maxLength: 5 }),
          countedAsync(async (pages) => {
            const { dock } = scriptedCamera((n, f, attempt) => {
              if (n !== 'LIST_CLIPS') return null;
              const [p, muts, mutate] = pages[Math.min(attempt, pages.length) - 1]!;
              const bytes = encodeStruct(MESSAGES.LIST_CLIPS.res, p);
              return rawFrame(MESSAGES.LIST_CLIPS.type, f.seq, mutate ? mutateBytes(bytes, muts) : bytes);
            });
            const s = await Session.connect(dock, FAST);
            try {
              const r = await settles(s.listClips(), 'LIST_CLIPS');
              if ('error' in r) expectDockError(r.error, 'PROTO_BAD_PAYLOAD', 'PROTO_UNEXPECTED', 'PROTO_TIMEOUT', 'PROTO_REMOTE');
              else {
                for (const c of r.value!.clips) expect(c.id).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/);
                for (const x of r.value!.refused) expect(x.error.code).toBe('PROTO_BAD_NAME');
              }
            } finally {
              await s.close();
            }
          }),
        ),
        params('sessionListing'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'READ: chunks reach the sink only at the offset and length asked, in order; anything else is a DockError',
    async () => {
      const arb = fc.record({
        size: fc.integer({ min: 1, max: 20_000 }),
        faults: fc.array(fc.record({ at: fc.nat(), how: fc.constantFrom('offset+1', 'offset-max', 'short', 'long', 'mutate', 'error'), muts: byteMutations(2) }), { maxLength: 3 }),
      });
      await fc.assert(
        fc.asyncProperty(
          arb,
          countedAsync(async ({ size, faults }) => {
            const clip = Buffer.alloc(size, 0x42);
            let reads = 0;
            const { dock } = scriptedCamera((n, f) => {
              if (n !== 'READ') return null;
              const q = decodeStruct(MESSAGES.READ.req, f.payload);
              const data = clip.subarray(q.offset, q.offset + q.length);
              const fault = faults.find((x) => x.at % 6 === reads);
              reads++;
              const good = { offset: q.offset, data };
              const bad = !fault
                ? good
                : fault.how === 'offset+1'
                  ? { ...good, offset: q.offset + 1 }
                  : fault.how === 'offset-max'
                    ? { ...good, offset: Number.MAX_SAFE_INTEGER }
                    : fault.how === 'short'
                      ? { ...good, data: data.subarray(1) }
                      : fault.how === 'long'
                        ? { ...good, data: Buffer.concat([data, Buffer.from([1])]) }
                        : good;
              if (fault?.how === 'error') return rawFrame(MESSAGES.ERROR.type, f.seq, encodeStruct(MESSAGES.ERROR.res, { code: 6, message: 'BAD_RANGE' }));
              const payload = encodeStruct(MESSAGES.READ.res, bad);
              return rawFrame(MESSAGES.READ.type, f.seq, fault?.how === 'mutate' ? mutateBytes(payload, fault.muts) : payload);
            });
            const s = await Session.connect(dock, FAST);
            const got: [number, number][] = [];
            try {
              const r = await settles(
                s.readRange('CLIP-1', 0, size, (offset, data) => void got.push([offset, data.length]), { chunkBytes: 4096 }),
                'READ',
              );
              if ('error' in r) expectDockError(r.error, 'PROTO_BAD_PAYLOAD', 'PROTO_UNEXPECTED', 'PROTO_TIMEOUT', 'PROTO_REMOTE');
              let next = 0;
              for (const [offset, n] of got) {
                expect(offset).toBe(next);
                next += n;
              }
              if (!('error' in r)) expect(next).toBe(size);
            } finally {
              await s.close();
            }
          }),
        ),
        params('sessionRead'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    "the camera's Endpoint: every intact request is answered once, in order (the answer or an ERROR); nothing else is",
    async () => {
      const handlers: Handlers = {};
      for (const name of REQUESTS) {
        const [res] = fc.sample(arbStruct(MESSAGES[name].res as Struct), { numRuns: 1, seed: 1 });
        (handlers as Record<string, unknown>)[name] = () => res;
      }
      const frame = fc.oneof(
        fc.constantFrom(...REQUESTS).chain((name) => fc.tuple(arbPayload(MESSAGES[name].req as Struct), fc.integer({ min: 0, max: 3 })).map(([p, flags]) => ({ type: MESSAGES[name].type, flags, payload: p.payload }))),
        fc.record({ type: fc.integer({ min: 0, max: 255 }), flags: fc.integer({ min: 0, max: 255 }), payload: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)) }),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(frame, fc.integer({ min: 0, max: 2 }), byteMutations(1), fc.boolean()), { maxLength: 12 }),
          countedAsync(async (steps) => {
            const [dock, camera] = LoopbackTransport.pair('fuzz-endpoint');
            const ep = new Endpoint(camera, handlers, { maxPayload: 8192 });
            const answers: Frame[] = [];
            const dec = new FrameDecoder({ onFrame: (f) => answers.push(f) });
            dock.on('data', (c) => dec.push(c));
            const bytes = Buffer.concat(
              steps.map(([f, version, muts, mutate], i) => {
                const w = encodeFrame({ version: version === 2 ? 2 : 1, type: f.type, flags: f.flags, seq: i + 1, payload: f.payload });
                return mutate ? mutateBytes(w, muts) : w;
              }),
            );
            const expected = specReceive(bytes, 8192).frames.filter((f) => (f.flags & FLAG_RESPONSE) === 0);
            await dock.write(bytes);
            for (let i = 0; i < 400 && answers.length < expected.length; i++) await new Promise((r) => setTimeout(r, 2));
            await new Promise((r) => setTimeout(r, 5));
            ep.close();
            expect(answers.map((a) => a.seq)).toEqual(expected.map((f) => f.seq));
            answers.forEach((a, i) => {
              expect(a.flags & FLAG_RESPONSE).toBe(FLAG_RESPONSE);
              expect([MESSAGES.ERROR.type, expected[i]!.type]).toContain(a.type);
            });
          }),
        ),
        params('endpoint'),
      );
    },
    TIMEOUT_MS,
  );
});

// ---------------------------------------------------------------------------------------------
// Custody records

describe('fuzz: custody parsers', () => {
  it(
    'parseManifest: CUSTODY_BAD_MANIFEST, or exactly the canonical bytes of a manifest whose chain is right; any change to a valid one is refused',
    () => {
      fc.assert(
        fc.property(
          arbManifest,
          fc.oneof(fc.record({ json: jsonMutations(), canonical: fc.boolean() }), fc.record({ bytes: byteMutations(3) }), fc.constant({})),
          counted((m, how) => {
            const { manifest, bytes: original } = sealManifest(m);
            const bytes =
              'json' in how ? Buffer.from(serialise(mutateJson(manifest, how.json), how.canonical), 'utf8') : 'bytes' in how ? mutateBytes(original, how.bytes) : original;
            try {
              const parsed = parseManifest(bytes);
              expect(canonicalJson(parsed)).toBe(bytes.toString('latin1'));
              expect(computeChain(parsed)).toBe(parsed.chain);
              expect(bytes.equals(original)).toBe(true);
            } catch (err) {
              expectDockError(err, 'CUSTODY_BAD_MANIFEST');
              expect(bytes.equals(original)).toBe(false);
            }
          }),
        ),
        params('manifest'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'ledger lines: never throws; a line the dock signed passes, and any change to it is reported',
    () => {
      let malleable = 0;
      fc.assert(
        fc.property(
          arbLedgerBody,
          fc.oneof(fc.record({ json: jsonMutations(), canonical: fc.boolean() }), fc.record({ bytes: byteMutations(3) }), fc.constant({}), fc.constant({ otherKey: true })),
          counted((body, how) => {
            const line = signedLine(body);
            const changed =
              'json' in how
                ? serialise(mutateJson(JSON.parse(line), how.json), how.canonical)
                : 'bytes' in how
                  ? mutateBytes(Buffer.from(line), how.bytes).toString('latin1')
                  : 'otherKey' in how
                    ? signedLine(body, otherKey.privateKey)
                    : line;
            const follows = { seq: body.seq, prev: body.prev };
            const { entry, problems } = checkLedgerLine(changed, ledgerKey.publicKey, follows);
            expect(Array.isArray(problems)).toBe(true);
            for (const p of problems) expect(typeof p).toBe('string');
            if (changed === line) {
              expect(problems).toEqual([]);
              expect(entry).toEqual(JSON.parse(line));
              return;
            }
            if (problems.length === 0 && sameSignatureBytes(changed, line)) {
              malleable++; // KNOWN, reported: the sig's text can change (base64 leniency, a one-string array) without its bytes; see the regressions below
              return;
            }
            expect(problems.length, `a changed line passed: ${changed}`).toBeGreaterThan(0);
          }),
        ),
        params('ledgerLine'),
      );
      if (malleable > 0) console.log(`ledger lines: ${malleable} changed line(s) passed through base64 signature leniency (known, reported)`);
    },
    TIMEOUT_MS,
  );

  it(
    'sidecars: checkClipAgainstSidecar reports on any text, never throws; the original sidecar passes',
    () => {
      const fx = sidecarFixture();
      expect(checkClipAgainstSidecar({ ...fx.args, sidecarText: fx.text }).ok).toBe(true);
      fc.assert(
        fc.property(
          fc.oneof(fc.record({ json: jsonMutations(4), canonical: fc.boolean() }), fc.record({ bytes: byteMutations(3) })),
          counted((how) => {
            const text = 'json' in how ? serialise(mutateJson(JSON.parse(fx.text), how.json), how.canonical) : mutateBytes(Buffer.from(fx.text), how.bytes).toString('utf8');
            let doc: unknown;
            try {
              doc = JSON.parse(text);
            } catch {
              doc = undefined;
            }
            expect(() => sidecarShapeProblem(doc)).not.toThrow();
            const report = checkClipAgainstSidecar({ ...fx.args, sidecarText: text });
            expect(report.ok).toBe(report.checks.every((c) => c.ok));
            for (const c of report.checks) expect(typeof c.detail).toBe('string');
            expect(() => JSON.stringify(report)).not.toThrow();
          }),
        ),
        params('sidecar'),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'firmware packages: FIRMWARE_INVALID, or a package that verifies only as exactly what the vendor signed',
    () => {
      const vendor = generateKeyPairSync('ed25519');
      const vendorSpki = vendor.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
      const arb = fc.record({
        image: fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => Buffer.from(b)),
        model: printable(1, 64),
        version: printable(1, 32),
        how: fc.oneof(fc.record({ header: jsonMutations(), canonical: fc.boolean() }), fc.record({ bytes: byteMutations(3) }), fc.constant({})),
      });
      fc.assert(
        fc.property(
          arb,
          counted(({ image, model, version, how }) => {
            const pkgBytes = packFirmware(image, model, version, vendor.privateKey);
            const magic = Buffer.byteLength(FIRMWARE_PACKAGE_MAGIC);
            const nl = pkgBytes.indexOf(0x0a, magic);
            const bytes =
              'header' in how
                ? Buffer.concat([pkgBytes.subarray(0, magic), Buffer.from(serialise(mutateJson(JSON.parse(pkgBytes.subarray(magic, nl).toString()), how.header), how.canonical)), pkgBytes.subarray(nl)])
                : 'bytes' in how
                  ? mutateBytes(pkgBytes, how.bytes)
                  : pkgBytes;
            let pkg;
            try {
              pkg = parseFirmwarePackage(bytes);
            } catch (err) {
              expectDockError(err, 'FIRMWARE_INVALID');
              return;
            }
            expect(pkg.image.length).toBeGreaterThan(0);
            try {
              verifyFirmwarePackage(pkg, model, vendorSpki);
            } catch (err) {
              expectDockError(err, 'FIRMWARE_INVALID');
              return;
            }
            expect({ model: pkg.model, version: pkg.version, image: pkg.image.toString('hex') }).toEqual({ model, version, image: image.toString('hex') });
          }),
        ),
        params('firmware'),
      );
    },
    TIMEOUT_MS,
  );
});

function sameSignatureBytes(changed: string, original: string): boolean {
  try {
    const a = JSON.parse(changed) as Record<string, unknown>;
    const b = JSON.parse(original) as Record<string, unknown>;
    const { sig: sa, ...ra } = a;
    const { sig: sb, ...rb } = b;
    return typeof sb === 'string' && canonicalJson(sa) !== canonicalJson(sb) && Buffer.from(String(sa), 'base64').equals(Buffer.from(sb, 'base64')) && canonicalJson(ra) === canonicalJson(rb);
  } catch {
    return false;
  }
}

/** A real sidecar: a signed manifest, the device and dock keys, four signed custody lines. */
function sidecarFixture(): { text: string; args: { file: string; sidecar: string; fileHash: { sha256: string; bytes: number } } } {
  const device = generateKeyPairSync('ed25519');
  const clip = Buffer.from('clip bytes for the sidecar fuzz');
  const sha256 = createHash('sha256').update(clip).digest('hex');
  const { manifest, bytes } = sealManifest({
    format: 'dockside-manifest-v1', serial: 'BC4-FUZZ0001', model: 'Sentinel BC4', firmware: '4.2.1', clipId: 'C-000001', seq: 1, officerId: 'OFC-1',
    startMs: 1_764_482_400_000, endMs: 1_764_482_403_000, durationMs: 3000, preEventS: 30, trigger: 'button', gps: null, container: 'bin', size: clip.length, sha256, prevChain: GENESIS_CHAIN,
  });
  const signature = signManifest(bytes, device.privateKey);
  const lines: string[] = [];
  let prev = LEDGER_GENESIS;
  for (const [i, event] of (['listed', 'pulled', 'verified', 'stored'] as const).entries()) {
    const details: LedgerEntry['details'] = event === 'verified' ? { sha256, chain: manifest.chain, prevChain: manifest.prevChain, seq: 1 } : event === 'stored' ? { sha256 } : {};
    const line = signedLine({ v: 1, seq: i + 1, timeMs: 1000 + i, event, serial: manifest.serial, clipId: manifest.clipId, details, prev });
    lines.push(line);
    prev = lineHash(line);
  }
  const dockRaw = spkiToRawEd25519(ledgerKey.publicKey.export({ type: 'spki', format: 'der' }));
  const text = buildSidecar({
    manifest,
    manifestBytes: bytes,
    signature,
    devicePublicKeyRaw: spkiToRawEd25519(device.publicKey.export({ type: 'spki', format: 'der' })),
    dockPublicKey: ledgerKey.publicKey,
    dockFingerprint: createHash('sha256').update(dockRaw).digest('hex'),
    receipt: { location: 'dir:/vault/BC4-FUZZ0001/C-000001.bin', sha256, receipt: `sha256:${sha256}` },
    custodyLines: lines,
  }).toString('utf8');
  return { text, args: { file: '/vault/BC4-FUZZ0001/C-000001.bin', sidecar: '/vault/BC4-FUZZ0001/C-000001.json', fileHash: { sha256, bytes: clip.length } } };
}

// ---------------------------------------------------------------------------------------------
// Bugs the fuzzer found, now fixed: each case stays as a regression test.

describe('fuzz findings (src/custody/Ledger.ts, src/custody/verifyClipFile.ts)', () => {
  const hostile = '{"event":"listed","seq":{"toString":1},"sig":"x"}';

  it('checkLedgerLine reports a line whose seq is {"toString":1} instead of throwing a TypeError', () => {
    expect(() => checkLedgerLine(hostile, ledgerKey.publicKey, { seq: 1, prev: null })).not.toThrow();
  });

  it('checkClipAgainstSidecar reports a custody line whose seq is {"toString":1} instead of throwing a TypeError', () => {
    const fx = sidecarFixture();
    const doc = JSON.parse(fx.text) as { custody: unknown[] };
    doc.custody.push(JSON.parse(hostile));
    expect(() => checkClipAgainstSidecar({ ...fx.args, sidecarText: JSON.stringify(doc) })).not.toThrow();
  });

  it('a ledger line whose signature text differs (same bytes, lenient base64) is reported as changed', () => {
    const line = signedLine({ v: 1, seq: 1, timeMs: 1, event: 'listed', serial: null, clipId: null, details: {}, prev: LEDGER_GENESIS });
    const e = JSON.parse(line) as LedgerEntry;
    const changed = canonicalJson({ ...e, sig: `${e.sig.replace(/=+$/, '')}` }); // unpadded: Node decodes the same 64 bytes
    expect(changed).not.toBe(line);
    expect(checkLedgerLine(changed, ledgerKey.publicKey).problems).not.toEqual([]);
  });

  it('a ledger line whose sig is an array holding the signature is reported as changed', () => {
    const line = signedLine({ v: 1, seq: 1, timeMs: 1, event: 'listed', serial: null, clipId: null, details: {}, prev: LEDGER_GENESIS });
    const e = JSON.parse(line) as LedgerEntry;
    const changed = canonicalJson({ ...e, sig: [e.sig] }); // String([s]) === s
    expect(checkLedgerLine(changed, ledgerKey.publicKey).problems).not.toEqual([]);
  });
});

describe('fuzz: inputs run', () => {
  it(`ran at least ${FUZZ_RUNS ?? 100_000} inputs`, () => {
    console.log(`fuzz: ${inputs} inputs (CI share total ${CI_TOTAL}${FUZZ_RUNS ? `, FUZZ_RUNS=${FUZZ_RUNS}` : ''})`);
    expect(inputs).toBeGreaterThanOrEqual(Math.floor((FUZZ_RUNS ?? 100_000) * 0.99));
  });
});
