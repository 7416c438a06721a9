// Third-party verification with the system's own tools (docs/custody.md §9, §10):
// openssl and sha256sum, run on the sidecar, clip and ledger of a real daemon run.
// The files the doc's jq commands write are written here from JSON.parse (jq is not
// needed), and each is checked to be exactly the bytes the doc says they are.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/custody/canonicalJson.js';
import type { LedgerEntry } from '../src/custody/Ledger.js';
import type { Sidecar } from '../src/custody/sidecar.js';
import { Daemon } from '../src/ingest/Daemon.js';
import { parseFaults } from '../src/sim/faults.js';

const GENESIS = '0'.repeat(64);
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
/** The doc's sed alternative to `jq -j -c -S 'del(.sig)'`: cut the top-level "sig" member out of a ledger line. */
const SIG_MEMBER = /,"sig":"[A-Za-z0-9+/]{86}=="(,"timeMs":[0-9]+,"v":1\}$)/;

interface ToolResult {
  code: number | null;
  out: string;
}

function tool(cmd: string, args: string[]): ToolResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${cmd} (it must be installed for this test): ${r.error.message}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** openssl pkeyutl -verify -pubin -inkey PEM -rawin -in DATA -sigfile SIG */
function opensslVerify(pem: string, data: string, sig: string): ToolResult {
  return tool('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pem, '-rawin', '-in', data, '-sigfile', sig]);
}

function sha256sum(path: string): string {
  const r = tool('sha256sum', [path]);
  expect(r.code, r.out).toBe(0);
  const m = /^([0-9a-f]{64}) /.exec(r.out);
  expect(m, r.out).not.toBeNull();
  return m![1]!;
}

/** `openssl pkey -pubin -in PEM -outform DER | tail -c 32 | sha256sum`: the fingerprint of an Ed25519 key. */
function keyFingerprint(pem: string, work: string): string {
  const der = join(work, 'key.der');
  const r = tool('openssl', ['pkey', '-pubin', '-in', pem, '-outform', 'DER', '-out', der]);
  expect(r.code, r.out).toBe(0);
  const raw = join(work, 'key.raw');
  writeFileSync(raw, readFileSync(der).subarray(-32));
  return sha256sum(raw);
}

const expectVerified = (r: ToolResult): void => {
  expect(r.out).toContain('Signature Verified Successfully');
  expect(r.code).toBe(0);
};
const expectRejected = (r: ToolResult): void => {
  expect(r.out).toContain('Signature Verification Failure');
  expect(r.code).not.toBe(0);
};

let dataDir: string;
let work: string;
let serial: string;
let sidecarPath: string;
let sc: Sidecar;
let clipPath: string;
let ledgerLines: string[];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dockside-openssl-'));
  work = join(dataDir, 'by-hand');
  mkdirSync(work);
  const daemon = await Daemon.open({
    dataDir,
    hashThreads: 1,
    spool: { minFreeBytes: 1024 * 1024 },
    session: { timeoutMs: 200, retries: 8 },
    sim: { cameras: 1, clips: 2, seed: 7, link: 'loopback', record: { mode: 'synthetic', syntheticBytes: 64 * 1024 }, faults: parseFaults('') },
  });
  try {
    await daemon.start();
    expect(await daemon.whenIdle()).toMatchObject({ clips: 2, stored: 2, released: 2 });
  } finally {
    await daemon.close();
  }
  [serial] = readdirSync(join(dataDir, 'vault')) as [string];
  const first = readdirSync(join(dataDir, 'vault', serial)).filter((n) => n.endsWith('.json')).sort()[0]!;
  sidecarPath = join(dataDir, 'vault', serial, first);
  sc = JSON.parse(readFileSync(sidecarPath, 'utf8')) as Sidecar;
  clipPath = join(dataDir, 'vault', serial, sc.clip.file);
  const text = readFileSync(join(dataDir, 'ledger.jsonl'), 'latin1');
  expect(text.endsWith('\n')).toBe(true);
  ledgerLines = text.slice(0, -1).split('\n');
});

afterAll(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** What `jq -j .manifestCanonical`, `jq -r .signature | base64 -d` and `jq -r .devicePublicKeyPem` write. */
function extract(): { signed: string; sig: string; device: string } {
  const signed = join(work, 'signed.bin');
  const sig = join(work, 'sig.bin');
  const device = join(work, 'device.pem');
  writeFileSync(signed, Buffer.from(sc.manifestCanonical, 'utf8')); // jq -j: the string's UTF-8, no newline
  writeFileSync(sig, Buffer.from(sc.signature, 'base64'));
  writeFileSync(device, `${sc.devicePublicKeyPem}\n`); // jq -r adds a newline; openssl does not mind
  return { signed, sig, device };
}

describe('a sidecar checked with openssl and sha256sum (docs/custody.md §9)', () => {
  it('the extracted files are exactly the bytes the camera signed, its signature and its key', () => {
    const { signed, sig } = extract();
    const bytes = readFileSync(signed);
    // Printable ASCII only, so jq's UTF-8 output, latin1 and the JSON string agree byte for byte.
    expect(PRINTABLE_ASCII.test(sc.manifestCanonical)).toBe(true);
    // The very bytes and signature the camera keeps on its flash (GET_MANIFEST returns them unchanged).
    const flash = join(dataDir, 'sim', serial, 'manifests', sc.clip.clipId);
    expect(bytes.equals(readFileSync(`${flash}.json`))).toBe(true);
    expect(readFileSync(sig).equals(readFileSync(`${flash}.sig`))).toBe(true);
    expect(readFileSync(sig)).toHaveLength(64);
    expect(Buffer.from(sc.signature, 'base64').toString('base64')).toBe(sc.signature);
    // Canonical (what `jq -j -c -S . signed.bin | cmp - signed.bin` checks), and the sidecar's copy says the same.
    const m = JSON.parse(bytes.toString('latin1')) as Sidecar['manifest'];
    expect(canonicalJson(m)).toBe(bytes.toString('latin1'));
    expect(m).toEqual(sc.manifest);
    expect(sc.clip.sha256).toBe(m.sha256);
    expect(bytes.subarray(0, 76).toString('latin1')).toMatch(/^\{"chain":"[0-9a-f]{64}",$/);
  });

  it('accepts an untouched one: openssl verifies the camera signature, sha256sum matches the signed hash', () => {
    const { signed, sig, device } = extract();
    expectVerified(opensslVerify(device, signed, sig));
    const m = JSON.parse(readFileSync(signed, 'latin1')) as Sidecar['manifest'];
    expect(sha256sum(clipPath)).toBe(m.sha256);
    expect(sha256sum(clipPath)).toBe(sc.manifest.sha256);
    expect(readFileSync(clipPath)).toHaveLength(m.size);
  });

  it('rejects the manifest with any one byte changed', () => {
    const { signed, sig, device } = extract();
    const bytes = readFileSync(signed);
    const shaAt = bytes.indexOf('"sha256":"') + 10;
    for (const at of [0, 11, shaAt, Math.floor(bytes.length / 2), bytes.length - 2]) {
      const forged = Buffer.from(bytes);
      forged[at] = forged[at] === 0x30 ? 0x31 : 0x30;
      const path = join(work, `forged-${at}.bin`);
      writeFileSync(path, forged);
      expectRejected(opensslVerify(device, path, sig));
    }
    const badSig = Buffer.from(readFileSync(sig));
    badSig[5]! ^= 0x01;
    writeFileSync(join(work, 'bad-sig.bin'), badSig);
    expectRejected(opensslVerify(device, signed, join(work, 'bad-sig.bin')));
  });

  it('rejects a tampered clip: sha256sum no longer equals the signed hash', () => {
    const altered = join(work, `altered-${sc.clip.file}`);
    copyFileSync(clipPath, altered);
    const bytes = readFileSync(altered);
    bytes[1000]! ^= 0x01;
    writeFileSync(altered, bytes);
    expect(sha256sum(altered)).not.toBe(sc.manifest.sha256);
    expect(sha256sum(clipPath)).toBe(sc.manifest.sha256);
  });

  it('recomputes the chain value with sha256sum: prevChain (32 bytes) ‖ sha256 (32 bytes) ‖ "{" + signed.bin from byte 77', () => {
    const { signed } = extract();
    const bytes = readFileSync(signed);
    const m = JSON.parse(bytes.toString('latin1')) as Sidecar['manifest'];
    const input = join(work, 'chain-input.bin');
    writeFileSync(input, Buffer.concat([Buffer.from(m.prevChain, 'hex'), Buffer.from(m.sha256, 'hex'), Buffer.from('{'), bytes.subarray(76)]));
    // The tail is exactly the canonical JSON of the manifest without "chain".
    const { chain: _chain, ...unchained } = m;
    expect(readFileSync(input).subarray(64).toString('latin1')).toBe(canonicalJson(unchained));
    expect(sha256sum(input)).toBe(m.chain);
    // The dock's signed "verified" line attests the same hash and chain value.
    const verified = sc.custody.find((e) => e.event === 'verified')!;
    expect(verified.details).toMatchObject({ sha256: m.sha256, chain: m.chain, prevChain: m.prevChain, seq: m.seq });
    if (m.seq === 1) expect(m.prevChain).toBe(GENESIS);
  });
});

describe('the ledger checked with openssl and sha256sum (docs/custody.md §3, §9)', () => {
  /** The body the dock signed, as the doc's sed command cuts it out of the line's own bytes. */
  function body(line: string): string {
    const cut = line.replace(SIG_MEMBER, '$1');
    expect(cut).not.toBe(line);
    // ... and as `jq -j -c -S 'del(.sig)'` re-encodes it: the canonical JSON of the line without "sig".
    const { sig: _sig, ...rest } = JSON.parse(line) as LedgerEntry;
    expect(canonicalJson(rest)).toBe(cut);
    return cut;
  }

  it("verifies every line's dock signature with dock.pub.pem and every hash link with sha256sum", () => {
    const pub = join(dataDir, 'dock.pub.pem');
    let prev = GENESIS;
    ledgerLines.forEach((line, i) => {
      expect(PRINTABLE_ASCII.test(line)).toBe(true);
      const e = JSON.parse(line) as LedgerEntry;
      expect(canonicalJson(e)).toBe(line);
      expect(e.seq).toBe(i + 1);
      expect(e.prev).toBe(prev);
      writeFileSync(join(work, 'line.bin'), body(line));
      writeFileSync(join(work, 'line.sig'), Buffer.from(e.sig, 'base64'));
      expectVerified(opensslVerify(pub, join(work, 'line.bin'), join(work, 'line.sig')));
      writeFileSync(join(work, 'line.txt'), line); // the line without its "\n"
      prev = sha256sum(join(work, 'line.txt'));
      expect(prev).toBe(createHash('sha256').update(line).digest('hex'));
    });
    expect(ledgerLines.length).toBeGreaterThan(10);
  });

  it('rejects a ledger line with one byte of its body changed', () => {
    const line = ledgerLines.find((l) => (JSON.parse(l) as LedgerEntry).event === 'stored')!;
    const e = JSON.parse(line) as LedgerEntry;
    const forged = body(line).replace(`"seq":${e.seq},`, `"seq":${e.seq + 1},`);
    expect(forged).not.toBe(body(line));
    writeFileSync(join(work, 'forged-line.bin'), forged);
    writeFileSync(join(work, 'line.sig'), Buffer.from(e.sig, 'base64'));
    expectRejected(opensslVerify(join(dataDir, 'dock.pub.pem'), join(work, 'forged-line.bin'), join(work, 'line.sig')));
  });

  it("verifies the sidecar's custody lines from the vault alone, with the sidecar's dock key", () => {
    const dockPem = join(work, 'sidecar-dock.pem');
    writeFileSync(dockPem, sc.dock.publicKeyPem); // jq -j .dock.publicKeyPem
    expect(readFileSync(dockPem, 'latin1')).toBe(readFileSync(join(dataDir, 'dock.pub.pem'), 'latin1'));
    expect(keyFingerprint(dockPem, work)).toBe(sc.dock.fingerprint);
    expect(sc.custody.map((c) => c.event)).toEqual(expect.arrayContaining(['listed', 'pulled', 'verified', 'stored', 'released']));
    let lastSeq = 0;
    for (const c of sc.custody) {
      expect(c.seq).toBeGreaterThan(lastSeq);
      lastSeq = c.seq;
      const { sig: _sig, ...rest } = c;
      // `jq -j -c -S '.custody[i] | del(.sig)'` gives the very body of the ledger's line with that seq.
      expect(canonicalJson(rest)).toBe(body(ledgerLines[c.seq - 1]!));
      writeFileSync(join(work, 'c.bin'), canonicalJson(rest));
      writeFileSync(join(work, 'c.sig'), Buffer.from(c.sig, 'base64'));
      expectVerified(opensslVerify(dockPem, join(work, 'c.bin'), join(work, 'c.sig')));
    }
    const stored = sc.custody.find((c) => c.event === 'stored')!;
    const released = sc.custody.find((c) => c.event === 'released')!;
    expect(stored.details['sha256']).toBe(sha256sum(clipPath));
    expect(released.seq).toBeGreaterThan(stored.seq);
  });

  it('ties the device key in the sidecar to the "enrolled" line of the ledger by its fingerprint', () => {
    const { device } = extract();
    const enrolled = ledgerLines.map((l) => JSON.parse(l) as LedgerEntry).filter((e) => e.event === 'enrolled' && e.serial === serial);
    expect(enrolled.map((e) => e.details['fingerprint'])).toContain(keyFingerprint(device, work));
  });
});
