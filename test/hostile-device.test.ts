// Hostile device answers, end to end: enrolled cameras whose firmware lies (test/
// helpers/hostileCamera.ts) docked in one in-process daemon beside an honest simulated
// camera. Each lie ends in a typed error for that clip or that bay, the daemon does
// not crash, the honest camera's clips are stored and released, and nothing is
// written outside the data directory. (test/bad-input.test.ts holds the same lies
// against a bare Session; this is what the dock does with them.)
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../src/custody/manifest.js';
import type { LedgerEntry } from '../src/custody/Ledger.js';
import { DockError } from '../src/errors.js';
import { Daemon } from '../src/ingest/Daemon.js';
import type { Bay } from '../src/ingest/Bay.js';
import { encodeStruct } from '../src/protocol/codec.js';
import { MESSAGES } from '../src/protocol/messages.js';
import { MAX_LISTED_CLIPS, Session } from '../src/protocol/Session.js';
import { parseFaults } from '../src/sim/faults.js';
import { hostileCamera, manifestFor, type HostileCamera } from './helpers/hostileCamera.js';
import { answer, rawFrame, scriptedCamera } from './helpers/scriptedCamera.js';
import { filesUnder } from './helpers/files.js';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

type Snapshot = Map<string, string>;

/** Every entry under `root` except the data dir itself: path → type, size, mode, mtime. */
function snapshot(root: string, except: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (p === except) continue;
      const st = lstatSync(p);
      out.set(relative(root, p), `${st.isDirectory() ? 'd' : st.isFile() ? 'f' : 'o'} ${st.size} ${st.mode.toString(8)} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

const clipBytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);
/** A u64 above 2^53 - 1 where the encoder would refuse it: patched into encoded bytes. */
function withU64(payload: Buffer, at: number, hi: number, lo = 0): Buffer {
  const b = Buffer.from(payload);
  b.writeUInt32LE(lo, at);
  b.writeUInt32LE(hi, at + 4);
  return b;
}

describe('hostile device answers, through the daemon', () => {
  it(
    'each lie is a typed error for its clip or its bay; the honest camera is offloaded; nothing lands outside the data dir',
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'dockside-hostile-'));
      roots.push(root);
      // The data dir sits deep, so that "../" in a name could climb out of it into these.
      mkdirSync(join(root, 'outside'));
      writeFileSync(join(root, 'outside', 'keep.txt'), 'untouched');
      mkdirSync(join(root, 'a', 'b'), { recursive: true });
      const dataDir = join(root, 'a', 'b', 'data');
      mkdirSync(dataDir); // before the snapshot: creating it changes its parent's mtime
      const before = snapshot(root, dataDir);

      const good = (serial: string, id: string, seq: number, n = 3000, fill = 1) => {
        const bytes = clipBytes(n, fill);
        return { id, bytes, manifest: manifestFor(serial, id.replace(/[^A-Za-z0-9_-]/g, 'x'), seq, bytes) }; // an unsafe id is never asked for its manifest
      };
      const typed = (serial: string, id: string, seq: number, change: (m: Record<string, unknown>) => void) => {
        const bytes = clipBytes(2000, seq);
        const m = JSON.parse(manifestFor(serial, id, seq, bytes).toString()) as Record<string, unknown>;
        change(m);
        return { id, bytes, manifest: Buffer.from(JSON.stringify(m)) };
      };
      const cams: Record<string, HostileCamera> = {
        // LIST says 4 kB more than the clip holds; the firmware refuses the READ past its end
        beyond: hostileCamera('HOST-BEYOND', (s) => [{ ...good(s, 'c1', 1), entry: { size: 3000 + 4096 } }]),
        // ... or serves padding past the end: the spooled file is not the manifest's size
        padded: hostileCamera(
          'HOST-PADDED',
          (s) => [{ ...good(s, 'c1', 1), entry: { size: 3000 + 4096 } }],
          (name, req, f) => (name === 'READ' ? answer('READ', f.seq, { offset: req['offset'] as number, data: Buffer.alloc(req['length'] as number, 7) }) : null),
        ),
        // a clip of 2^53 - 1 bytes: no spool has room, ever; the pull fails with that reason, nothing is written
        huge: hostileCamera('HOST-HUGE', (s) => [{ ...good(s, 'c1', 1), entry: { size: Number.MAX_SAFE_INTEGER } }]),
        // a size of 2^53: beyond a safe integer, the listing itself is malformed
        over53: hostileCamera(
          'HOST-OVER53',
          (s) => [good(s, 'c1', 1)],
          (name, _req, f) => {
            if (name !== 'LIST_CLIPS') return null;
            const payload = encodeStruct(MESSAGES.LIST_CLIPS.res, { clips: [{ id: 'c1', seq: 1, size: 0, startMs: 0, durationMs: 3000, trigger: 0, released: false }], more: false, next: 2 });
            return rawFrame(MESSAGES.LIST_CLIPS.type, f.seq, withU64(payload, 2 + 2 + 2 + 4, 0x200000));
          },
        ),
        // READ answered for the wrong offset: one byte on, 2^53 - 1, and 2^64 - 1 (which the encoder cannot even write)
        offsets: hostileCamera(
          'HOST-OFFSETS',
          (s) => [good(s, 'plus1', 1), good(s, 'max53', 2), good(s, 'max64', 3)],
          (name, req, f) => {
            if (name !== 'READ') return null;
            const data = Buffer.alloc(req['length'] as number, 1);
            if (req['clipId'] === 'plus1') return answer('READ', f.seq, { offset: (req['offset'] as number) + 1, data });
            if (req['clipId'] === 'max53') return answer('READ', f.seq, { offset: Number.MAX_SAFE_INTEGER, data });
            return rawFrame(MESSAGES.READ.type, f.seq, withU64(encodeStruct(MESSAGES.READ.res, { offset: 0, data }), 0, 0xffffffff, 0xffffffff));
          },
        ),
        // names that would climb out of the spool, a NUL, a dot: refused one by one; the good clip still comes
        names: hostileCamera('HOST-NAMES', (s) => [
          good(s, '../../../../outside/evil', 1),
          good(s, 'a\u0000b', 2),
          good(s, '..', 3),
          good(s, '/etc/passwd', 4),
          good(s, 'x.mp4', 5),
          good(s, 'good-1', 6),
        ]),
        // a 10 kB clip id: longer than the field allows, the page is malformed
        longName: hostileCamera(
          'HOST-LONGNAME',
          (s) => [good(s, 'c1', 1)],
          (name, _req, f) => {
            if (name !== 'LIST_CLIPS') return null;
            const id = 'a'.repeat(10_000);
            const b = Buffer.alloc(2 + 2 + id.length + 4 + 8 + 8 + 4 + 1 + 1 + 1 + 4);
            b.writeUInt16LE(1, 0);
            b.writeUInt16LE(id.length, 2);
            b.write(id, 4, 'ascii');
            return rawFrame(MESSAGES.LIST_CLIPS.type, f.seq, b);
          },
        ),
        // manifests of the wrong shape, each signed by the camera's own key
        types: hostileCamera('HOST-TYPES', (s) => [
          typed(s, 'size-string', 1, (m) => void (m['size'] = String(m['size']))),
          typed(s, 'no-sha256', 2, (m) => void delete m['sha256']),
          typed(s, 'extra-field', 3, (m) => void (m['aaaExtra'] = 1)),
          typed(s, 'seq-float', 4, (m) => void (m['seq'] = 4.5)),
          typed(s, 'gps-string', 5, (m) => void (m['gps'] = '38.9,-77.0')),
        ]),
        // a correctly sealed and signed manifest that names another camera
        serial: hostileCamera('HOST-SERIAL', () => {
          const bytes = clipBytes(2500, 9);
          return [{ id: 'c1', bytes, manifest: manifestFor('OTHER-0001', 'c1', 1, bytes) }];
        }),
        // a manifest of 17 kB: beyond bytes(16384)
        bigManifest: hostileCamera(
          'HOST-BIGMAN',
          (s) => [good(s, 'c1', 1)],
          (name, _req, f) => {
            if (name !== 'GET_MANIFEST') return null;
            const b = Buffer.alloc(4 + 17_000 + 64);
            b.writeUInt32LE(17_000, 0);
            return rawFrame(MESSAGES.GET_MANIFEST.type, f.seq, b);
          },
        ),
      };

      const lines: Record<string, unknown>[] = [];
      const log = pino({ level: 'debug' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)), cb()) }));
      const daemon = await Daemon.open({
        dataDir,
        bays: 16,
        hashThreads: 1,
        log,
        spool: { minFreeBytes: 1024 * 1024 },
        session: { timeoutMs: 200, retries: 2 },
        sim: { cameras: 1, clips: 2, seed: 11, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 20_000 }, faults: parseFaults('') },
        candidates: Object.values(cams).map((c) => c.candidate),
      });
      let closed = false;
      try {
        for (const c of Object.values(cams)) daemon.store.enroll(c.serial, 'Scripted', c.publicKeyRaw);
        const honest = daemon.simFleet!.cameras[0]!.serial;
        await daemon.start();
        const bay = (serial: string): Bay | undefined => daemon.bays.find((b) => b.serial === serial);
        const settled = (): boolean =>
          daemon.store.clips({ serial: honest }).filter((c) => c.state === 'released').length === 2 &&
          Object.values(cams).every((c) => bay(c.serial)?.settled);
        for (let i = 0; i < 400 && !settled(); i++) await new Promise((r) => setTimeout(r, 50));
        const states = Object.fromEntries(daemon.bays.map((b) => [b.serial, `${b.state}${b.error ? ` ${b.error.code}` : ''}`]));
        expect(settled(), JSON.stringify(states)).toBe(true);

        const clip = (c: HostileCamera, id: string) => daemon.store.clip(c.serial, id);
        const pullFailures = (c: HostileCamera, id: string) => lines.filter((l) => l['serial'] === c.serial && l['clipId'] === id && l['msg'] === 'pull failed').map((l) => l['code']);
        const ledger = readFileSync(join(dataDir, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LedgerEntry);
        const quarantined = (c: HostileCamera, id: string) => ledger.find((e) => e.event === 'quarantined' && e.serial === c.serial && e.clipId === id)?.details;

        // The honest camera, served beside all of them: every clip stored and released.
        expect(daemon.store.clips({ serial: honest }).map((c) => c.state)).toEqual(['released', 'released']);

        // Lengths beyond the clip.
        expect(pullFailures(cams['beyond']!, 'c1')).toEqual(Array(5).fill('PROTO_REMOTE'));
        expect(clip(cams['beyond']!, 'c1')).toMatchObject({ state: 'pulling', offset: 0 });
        expect(quarantined(cams['padded']!, 'c1')).toMatchObject({ check: 'hash', reason: expect.stringMatching(/^size mismatch: manifest 3000 bytes, listed 7096, spooled 7096/) });
        expect(clip(cams['padded']!, 'c1')!.state).toBe('quarantined');

        // Huge sizes: 2^53 - 1 can never fit in the spool: the pull fails at once with that reason (not a wait
        // without end), nothing is pulled, the clip stays listed and on the camera; 2^53 is a malformed listing.
        expect(pullFailures(cams['huge']!, 'c1')).toEqual(Array(5).fill('INGEST_CLIP_TOO_LARGE'));
        expect(clip(cams['huge']!, 'c1')).toMatchObject({ state: 'listed', offset: 0 });
        expect(bay(cams['huge']!.serial)!.state).not.toBe('pulling');
        expect(cams['huge']!.requests.filter((r) => r.name === 'READ')).toEqual([]);
        expect(cams['huge']!.requests.filter((r) => r.name === 'RELEASE')).toEqual([]);
        expect(bay(cams['over53']!.serial)).toMatchObject({ state: 'failed', error: { code: 'PROTO_BAD_PAYLOAD', message: expect.stringContaining('"size" is larger than 2^53-1') } });
        expect(daemon.store.clips({ serial: cams['over53']!.serial })).toEqual([]);

        // READ data for the wrong offset.
        expect(pullFailures(cams['offsets']!, 'plus1')).toEqual(Array(5).fill('PROTO_UNEXPECTED'));
        expect(pullFailures(cams['offsets']!, 'max53')).toEqual(Array(5).fill('PROTO_UNEXPECTED'));
        expect(pullFailures(cams['offsets']!, 'max64')).toEqual(Array(5).fill('PROTO_BAD_PAYLOAD'));
        for (const id of ['plus1', 'max53', 'max64']) expect(clip(cams['offsets']!, id)).toMatchObject({ state: 'pulling', offset: 0 });

        // Names: each unsafe id refused on its own (PROTO_BAD_NAME's message), the good clip stored and released.
        const refusedIds = ledger.filter((e) => e.event === 'refused' && e.serial === cams['names']!.serial).map((e) => [e.details['clipId'], e.details['reason']]);
        expect(refusedIds.map(([id]) => id)).toEqual(['../../../../outside/evil', 'a?b', '..', '/etc/passwd', 'x.mp4']);
        for (const [, reason] of refusedIds) expect(reason).toMatch(/unsafe clip id .* the clip is left on the camera/);
        expect(daemon.store.clips({ serial: cams['names']!.serial }).map((c) => [c.clipId, c.state])).toEqual([['good-1', 'released']]);
        expect(cams['names']!.released).toEqual(['good-1']);
        expect(bay(cams['longName']!.serial)).toMatchObject({ state: 'failed', error: { code: 'PROTO_BAD_PAYLOAD', message: expect.stringContaining('"id" claims 10000 bytes') } });

        // Manifests of the wrong shape: quarantined at the manifest check, naming the field; parseManifest's code is CUSTODY_BAD_MANIFEST.
        const wrong = { 'size-string': 'size', 'no-sha256': 'sha256', 'extra-field': '(root)', 'seq-float': 'seq', 'gps-string': 'gps' } as const;
        for (const [id, field] of Object.entries(wrong)) {
          expect(quarantined(cams['types']!, id), id).toMatchObject({ check: 'manifest', reason: expect.stringContaining(`manifest field ${field}`) });
          const row = clip(cams['types']!, id)!;
          expect(row.state).toBe('quarantined');
          let code: string | undefined;
          try {
            parseManifest(row.manifest!);
          } catch (err) {
            code = err instanceof DockError ? err.code : String(err);
          }
          expect(code, id).toBe('CUSTODY_BAD_MANIFEST');
        }
        // A serial in the manifest that is not the one HELLO (and AUTH) gave.
        expect(quarantined(cams['serial']!, 'c1')).toMatchObject({ check: 'manifest', reason: 'manifest names OTHER-0001/c1, but the clip was listed as HOST-SERIAL/c1' });
        expect(pullFailures(cams['bigManifest']!, 'c1')).toEqual(Array(5).fill('PROTO_BAD_PAYLOAD'));
        expect(clip(cams['bigManifest']!, 'c1')!.state).toBe('listed');

        // Nothing of any lie was stored or released.
        for (const c of Object.values(cams)) if (c !== cams['names']) expect(c.released, c.serial).toEqual([]);
        await daemon.close();
        closed = true;

        // Nothing was written outside the data dir, and inside it only under the names the dock chose.
        expect(snapshot(root, dataDir)).toEqual(before);
        const inside = filesUnder(dataDir);
        for (const f of inside) expect(f, f).toMatch(/^(?:[A-Za-z0-9._-]+|(?:spool|quarantine|vault)\/[A-Z0-9-]+\/[A-Za-z0-9_-]+\.(?:part|bin|mp4|json|reason\.json)|sim\/.+)$/);
        expect(inside.filter((f) => /evil|passwd|\.\./.test(f))).toEqual([]);
      } finally {
        if (!closed) await daemon.close();
      }
    },
    60_000,
  );
});

describe('hostile listings, against the session', () => {
  it('a camera whose every page is empty but says more follow: PROTO_UNEXPECTED at once, not an endless listing', async () => {
    const { dock, requests } = scriptedCamera((name, f) => {
      if (name !== 'LIST_CLIPS') return null;
      const cursor = f.payload.readUInt32LE(0);
      return answer('LIST_CLIPS', f.seq, { clips: [], more: true, next: cursor + 1 });
    });
    const s = await Session.connect(dock, { timeoutMs: 200 });
    await expect(s.listClips()).rejects.toMatchObject({ code: 'PROTO_UNEXPECTED', message: expect.stringContaining('empty LIST_CLIPS page that says more follow') });
    expect(requests.filter((r) => r.name === 'LIST_CLIPS')).toHaveLength(1);
    await s.close();
  });

  it(`a camera that never stops listing new clips: the listing ends at ${MAX_LISTED_CLIPS} clips, the memory it takes is bounded`, async () => {
    const { dock, requests } = scriptedCamera((name, f) => {
      if (name !== 'LIST_CLIPS') return null;
      const cursor = Math.max(1, f.payload.readUInt32LE(0));
      const clips = Array.from({ length: 256 }, (_, i) => ({ id: `c${cursor + i}`, seq: cursor + i, size: 1, startMs: 0, durationMs: 1, trigger: 0, released: false }));
      return answer('LIST_CLIPS', f.seq, { clips, more: true, next: cursor + 256 });
    });
    const s = await Session.connect(dock, { timeoutMs: 500, maxPayload: 64 * 1024 });
    const { clips } = await s.listClips(256);
    expect(clips).toHaveLength(MAX_LISTED_CLIPS);
    expect(requests.filter((r) => r.name === 'LIST_CLIPS')).toHaveLength(MAX_LISTED_CLIPS / 256);
    await s.close();
  });

  it('an empty GET_LOG page that says more follow is refused the same way', async () => {
    const { dock } = scriptedCamera((name, f) => (name === 'GET_LOG' ? answer('GET_LOG', f.seq, { entries: [], more: true, next: f.payload.readUInt32LE(0) + 1 }) : null));
    const s = await Session.connect(dock, { timeoutMs: 200 });
    await expect(s.getLog()).rejects.toMatchObject({ code: 'PROTO_UNEXPECTED' });
    await s.close();
  });
});
