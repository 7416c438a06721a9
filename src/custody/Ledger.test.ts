import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson } from './canonicalJson.js';
import { DOCK_KEY_FILE, DOCK_PUB_FILE, loadDockPublicKey, loadOrCreateDockKey } from './dockKey.js';
import { LEDGER_GENESIS, Ledger, lineHash, verifyLedgerFile, type LedgerCheck, type LedgerEntry } from './Ledger.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');

let root: string;
let path: string;
const open: Ledger[] = [];

function openLedger(key: KeyObject = privateKey): Ledger {
  const l = Ledger.open(path, key);
  open.push(l);
  return l;
}

async function closeAll(): Promise<void> {
  for (const l of open.splice(0)) await l.close();
}

/** A closed ledger file with `n` events. */
async function writeLedger(n: number): Promise<string[]> {
  const l = openLedger();
  for (let i = 1; i <= n; i++) l.append(i % 2 ? 'listed' : 'pulled', { serial: 'BC4-LEDGER01', clipId: `C${i}`, details: { i, note: 'x' } }, 1000 + i);
  await closeAll();
  return readFileSync(path, 'utf8').split('\n').slice(0, -1);
}

function writeLines(lines: string[], end = '\n'): void {
  writeFileSync(path, lines.join('\n') + end);
}

function problemsAt(check: LedgerCheck, line: number): string[] {
  return check.problems.filter((p) => p.line === line).map((p) => p.problem);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-ledger-'));
  path = join(root, 'ledger.jsonl');
});

afterEach(async () => {
  await closeAll();
  rmSync(root, { recursive: true, force: true });
});

describe('Ledger: append and verify', () => {
  it('a fresh ledger starts at seq 0 and the genesis hash', () => {
    const l = openLedger();
    expect(l.seq).toBe(0);
    expect(l.head).toBe(LEDGER_GENESIS);
    expect(verifyLedgerFile(path, publicKey)).toEqual({ ok: true, entries: [], problems: [] });
  });

  it('a missing file verifies as empty', () => {
    expect(verifyLedgerFile(join(root, 'none.jsonl'), publicKey)).toEqual({ ok: true, entries: [], problems: [] });
  });

  it('round trip: every line is canonical, linked to the one before and signed by the dock', () => {
    const l = openLedger();
    const seen: { entry: LedgerEntry; line: string }[] = [];
    l.onAppend = (entry, line) => seen.push({ entry, line });
    const e1 = l.append('ledger_opened', { details: { dock: 'abc' } }, 10);
    expect(e1).toMatchObject({ v: 1, seq: 1, timeMs: 10, event: 'ledger_opened', serial: null, clipId: null, details: { dock: 'abc' }, prev: LEDGER_GENESIS });
    const e2 = l.append('stored', { serial: 'BC4-LEDGER01', clipId: 'C1', details: { bytes: 5, nested: { list: [1, 'two', true, null] } } }, 20);
    expect(e2.prev).toBe(lineHash(seen[0]!.line));
    expect(l.seq).toBe(2);
    expect(l.head).toBe(lineHash(seen[1]!.line));

    const text = readFileSync(path, 'utf8');
    expect(text).toBe(`${seen[0]!.line}\n${seen[1]!.line}\n`);
    for (const { entry, line } of seen) expect(canonicalJson(entry)).toBe(line);

    const check = verifyLedgerFile(path, publicKey);
    expect(check.problems).toEqual([]);
    expect(check.ok).toBe(true);
    expect(check.entries).toEqual([e1, e2]);
  });

  it('the whole ledger fails with the wrong public key', async () => {
    await writeLedger(2);
    const check = verifyLedgerFile(path, other.publicKey);
    expect(check.ok).toBe(false);
    expect(problemsAt(check, 1).join()).toMatch(/signature does not verify/);
    expect(problemsAt(check, 2).join()).toMatch(/signature does not verify/);
  });

  it('reopening continues seq and prev', async () => {
    await writeLedger(3);
    const lastLine = readFileSync(path, 'utf8').split('\n')[2]!;
    const l = openLedger();
    expect(l.seq).toBe(3);
    expect(l.head).toBe(lineHash(lastLine));
    const e = l.append('released', { serial: 'BC4-LEDGER01', clipId: 'C1' });
    expect(e.seq).toBe(4);
    expect(e.prev).toBe(lineHash(lastLine));
    await closeAll();
    const check = verifyLedgerFile(path, publicKey);
    expect(check.problems).toEqual([]);
    expect(check.entries.map((x) => x.seq)).toEqual([1, 2, 3, 4]);
  });

  it('non-ASCII detail values are made ASCII, so the line stays canonical and verifies', async () => {
    const l = openLedger();
    const e = l.append('refused', { serial: 'BC4-LEDGER01', details: { reason: 'caméra ✓ 🚓\n\ttab', list: ['ü', 1], deep: { x: 'ñ' } } });
    expect(e.details).toEqual({ reason: 'cam?ra ? ????tab', list: ['?', 1], deep: { x: '?' } });
    await closeAll();
    const text = readFileSync(path, 'utf8');
    expect(/^[\x20-\x7e\n]*$/.test(text)).toBe(true);
    expect(verifyLedgerFile(path, publicKey).ok).toBe(true);
  });

  it('a non-ASCII detail key is made ASCII too, instead of failing the append', () => {
    // BUG: ascii() only rewrites values; a key such as "größe" makes canonicalJson throw
    // and the custody event is never recorded.
    const l = openLedger();
    const e = l.append('media_flagged', { serial: 'BC4-LEDGER01', clipId: 'C1', details: { größe: 1 } });
    expect(Object.keys(e.details)).toEqual(['gr??e']);
  });
});

describe('verifyLedgerFile detects tampering', () => {
  it('a changed byte in a line (ASCII)', async () => {
    const lines = await writeLedger(4);
    lines[1] = lines[1]!.replace('"note":"x"', '"note":"y"');
    writeLines(lines);
    const check = verifyLedgerFile(path, publicKey);
    expect(check.ok).toBe(false);
    expect(problemsAt(check, 2).join()).toMatch(/signature does not verify/);
    expect(problemsAt(check, 3).join()).toMatch(/does not match the hash of line 2/);
    expect(problemsAt(check, 1)).toEqual([]);
    expect(problemsAt(check, 4)).toEqual([]);
  });

  it('a changed byte in a line (non-ASCII) is reported, not thrown', async () => {
    // BUG: canonicalJson(e) and canonicalJson(body) run outside any try, and canonicalJson
    // throws on a non-ASCII string (or a float, or a non-safe integer); so one flipped
    // byte makes the offline verifier crash instead of saying which line breaks.
    const lines = await writeLedger(3);
    writeLines(lines.map((l, i) => (i === 1 ? l.replace('"note":"x"', '"note":"\u00e9"') : l)));
    let check: LedgerCheck | undefined;
    expect(() => (check = verifyLedgerFile(path, publicKey))).not.toThrow();
    expect(check!.ok).toBe(false);
    expect(problemsAt(check!, 2).length).toBeGreaterThan(0);
    expect(problemsAt(check!, 3).join()).toMatch(/does not match the hash of line 2/);
  });

  it('a line that is valid JSON but not an object is reported, not thrown', async () => {
    // BUG: `const { sig, ...body } = e` throws a TypeError when the line is `null`.
    const lines = await writeLedger(2);
    writeLines([lines[0]!, 'null', lines[1]!]);
    let check: LedgerCheck | undefined;
    expect(() => (check = verifyLedgerFile(path, publicKey))).not.toThrow();
    expect(check!.ok).toBe(false);
    expect(problemsAt(check!, 2).length).toBeGreaterThan(0);
  });

  it('a line that is not JSON', async () => {
    const lines = await writeLedger(2);
    writeLines([lines[0]!, '{garbage', lines[1]!]);
    const check = verifyLedgerFile(path, publicKey);
    expect(problemsAt(check, 2)).toEqual(['not valid JSON']);
    expect(problemsAt(check, 3).join()).toMatch(/does not match the hash of line 2/);
  });

  it('a deleted line in the middle, and the first line', async () => {
    const lines = await writeLedger(4);
    writeLines([lines[0]!, lines[2]!, lines[3]!]);
    let check = verifyLedgerFile(path, publicKey);
    expect(check.ok).toBe(false);
    expect(problemsAt(check, 2).join()).toMatch(/sequence 3 where 2 was expected/);
    expect(problemsAt(check, 2).join()).toMatch(/does not match the hash of line 1/);
    expect(problemsAt(check, 3)).toEqual([]);

    writeLines(lines.slice(1));
    check = verifyLedgerFile(path, publicKey);
    expect(problemsAt(check, 1).join()).toMatch(/sequence 2 where 1 was expected/);
    expect(problemsAt(check, 1).join()).toMatch(/does not match the hash of line 0/);
  });

  it('two lines swapped', async () => {
    const lines = await writeLedger(4);
    writeLines([lines[0]!, lines[2]!, lines[1]!, lines[3]!]);
    const check = verifyLedgerFile(path, publicKey);
    expect(check.ok).toBe(false);
    expect(problemsAt(check, 2).join()).toMatch(/sequence 3 where 2 was expected/);
    expect(problemsAt(check, 3).join()).toMatch(/sequence 2 where 4 was expected/);
    expect(problemsAt(check, 4).join()).toMatch(/does not match the hash of line 3/);
    // each line's own signature is still fine: the order is what breaks
    expect(check.problems.some((p) => /signature/.test(p.problem))).toBe(false);
  });

  it('a line signed by another key, even when seq and prev link correctly', async () => {
    await writeLedger(2);
    const rogue = openLedger(other.privateKey); // continues the chain, signs with another key
    rogue.append('released', { serial: 'BC4-LEDGER01', clipId: 'C1' });
    await closeAll();
    const good = openLedger();
    good.append('docked', { serial: 'BC4-LEDGER01' });
    await closeAll();
    const check = verifyLedgerFile(path, publicKey);
    expect(check.ok).toBe(false);
    expect(check.problems).toEqual([{ line: 3, seq: 3, problem: expect.stringMatching(/signature does not verify/) as unknown as string }]);
  });

  it('a forged line with a valid signature over a different body', async () => {
    const lines = await writeLedger(2);
    const e = JSON.parse(lines[1]!) as LedgerEntry;
    const { sig: _sig, ...body } = e;
    const forged = { ...body, details: { i: 2, note: 'forged' } };
    // the signature of the original body, pasted onto a changed body
    const line = canonicalJson({ ...forged, sig: e.sig });
    writeLines([lines[0]!, line]);
    expect(problemsAt(verifyLedgerFile(path, publicKey), 2).join()).toMatch(/signature does not verify/);
    // and the same forged body properly signed by the dock verifies: the check is the signature
    const resigned = canonicalJson({ ...forged, sig: sign(null, Buffer.from(canonicalJson(forged)), privateKey).toString('base64') });
    writeLines([lines[0]!, resigned]);
    expect(verifyLedgerFile(path, publicKey).ok).toBe(true);
  });

  it('a non-canonical line (same content, other key order / spacing)', async () => {
    const lines = await writeLedger(3);
    const e = JSON.parse(lines[1]!) as LedgerEntry;
    const reordered = JSON.stringify({ sig: e.sig, seq: e.seq, v: e.v, timeMs: e.timeMs, event: e.event, serial: e.serial, clipId: e.clipId, details: e.details, prev: e.prev });
    writeLines([lines[0]!, reordered, lines[2]!]);
    let check = verifyLedgerFile(path, publicKey);
    expect(problemsAt(check, 2)).toEqual(['not in canonical form']);
    expect(problemsAt(check, 3).join()).toMatch(/does not match the hash of line 2/);

    writeLines([lines[0]!, lines[1]!.replace(',', ', '), lines[2]!]);
    check = verifyLedgerFile(path, publicKey);
    expect(problemsAt(check, 2)).toEqual(['not in canonical form']);
  });

  it('an unknown event', async () => {
    const lines = await writeLedger(1);
    const e = JSON.parse(lines[0]!) as LedgerEntry;
    const { sig: _sig, ...body } = e;
    const odd = { ...body, event: 'teleported' };
    writeLines([canonicalJson({ ...odd, sig: sign(null, Buffer.from(canonicalJson(odd)), privateKey).toString('base64') })]);
    expect(verifyLedgerFile(path, publicKey).problems).toEqual([{ line: 1, seq: 1, problem: 'unknown event "teleported"' }]);
  });

  it('an unfinished last line', async () => {
    const lines = await writeLedger(3);
    writeLines([lines[0]!, lines[1]!, lines[2]!.slice(0, 40)], '');
    const check = verifyLedgerFile(path, publicKey);
    expect(check.ok).toBe(false);
    expect(problemsAt(check, 3).join()).toMatch(/unfinished/);
    expect(check.entries.map((e) => e.seq)).toEqual([1, 2]);
    // the complete last line with its newline dropped is unfinished as well
    writeLines(lines, '');
    expect(problemsAt(verifyLedgerFile(path, publicKey), 3).join()).toMatch(/unfinished/);
  });
});

describe('Ledger.open repairs a torn last line', () => {
  it('cuts the torn bytes, appends ledger_repaired, and the result verifies', async () => {
    const lines = await writeLedger(3);
    const good = `${lines.join('\n')}\n`;
    const torn = '{"clipId":"C4","details":{"i":4';
    appendFileSync(path, torn);
    const l = openLedger();
    expect(l.seq).toBe(4);
    await closeAll();
    const text = readFileSync(path, 'utf8');
    expect(text.startsWith(good)).toBe(true);
    expect(text).not.toContain(torn);
    const check = verifyLedgerFile(path, publicKey);
    expect(check.problems).toEqual([]);
    expect(check.entries).toHaveLength(4);
    const repaired = check.entries[3]!;
    expect(repaired).toMatchObject({ seq: 4, event: 'ledger_repaired', prev: lineHash(lines[2]!), details: { tornBytes: Buffer.byteLength(torn) } });
  });

  it('a file that holds only a torn line starts again at genesis', async () => {
    writeFileSync(path, '{"v":1,"seq":1');
    const l = openLedger();
    expect(l.seq).toBe(1);
    await closeAll();
    const check = verifyLedgerFile(path, publicKey);
    expect(check.problems).toEqual([]);
    expect(check.entries.map((e) => [e.seq, e.event, e.prev])).toEqual([[1, 'ledger_repaired', LEDGER_GENESIS]]);
  });

  it('a clean file is left as it is', async () => {
    await writeLedger(2);
    const before = readFileSync(path);
    openLedger();
    await closeAll();
    expect(readFileSync(path).equals(before)).toBe(true);
  });
});

describe('dock key', () => {
  it('is made once, private to the owner, and reloads with the same fingerprint; its public file verifies the ledger', async () => {
    const k1 = loadOrCreateDockKey(root);
    expect(statSync(join(root, DOCK_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(k1.publicKeyRaw).toHaveLength(32);
    const k2 = loadOrCreateDockKey(root);
    expect(k2.fingerprint).toBe(k1.fingerprint);
    expect(k2.publicKeyRaw.equals(k1.publicKeyRaw)).toBe(true);

    const l = openLedger(k1.privateKey);
    l.append('ledger_opened', { details: { dock: k1.fingerprint } });
    await closeAll();
    expect(verifyLedgerFile(path, loadDockPublicKey(root)).ok).toBe(true);
  });

  it('an unreadable key file is CONFIG_INVALID, never replaced', () => {
    writeFileSync(join(root, DOCK_KEY_FILE), 'not a key');
    expect(() => loadOrCreateDockKey(root)).toThrow(/cannot be read/);
    expect(readFileSync(join(root, DOCK_KEY_FILE), 'utf8')).toBe('not a key');
    expect(() => loadDockPublicKey(root)).toThrow(/cannot read the dock's public key/);
  });

  it(`${DOCK_PUB_FILE} holds only the public key`, () => {
    loadOrCreateDockKey(root);
    const pub = readFileSync(join(root, DOCK_PUB_FILE), 'utf8');
    expect(pub).toContain('BEGIN PUBLIC KEY');
    expect(pub).not.toContain('PRIVATE');
  });
});
