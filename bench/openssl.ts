// OpenSSL (and coreutils) as the yardstick: what the machine's own tools take for
// the same work on the same files, with all cores busy.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')}... exited ${code}: ${err.trim().slice(0, 300)}`))));
  });
}

/** Splits files into `n` groups of about equal bytes (largest first into the lightest group). */
export function shares(files: string[], n: number): string[][] {
  const groups = Array.from({ length: n }, () => ({ bytes: 0, files: [] as string[] }));
  const sized = files.map((f) => ({ f, size: statSync(f).size })).sort((a, b) => b.size - a.size);
  for (const { f, size } of sized) {
    const g = groups.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    g.files.push(f);
    g.bytes += size;
  }
  return groups.map((g) => g.files).filter((g) => g.length > 0);
}

/** `procs` parallel `openssl dgst -sha256` over their shares of `files`; returns the SHA-256s by file and the seconds taken. */
export async function opensslDgst(files: string[], procs: number): Promise<{ seconds: number; sha256: Map<string, string> }> {
  const t0 = performance.now();
  const outs = await Promise.all(shares(files, procs).map((g) => run('openssl', ['dgst', '-sha256', '-r', ...g])));
  const seconds = (performance.now() - t0) / 1000;
  const sha256 = new Map<string, string>();
  for (const line of outs.join('').split('\n')) {
    const m = /^([0-9a-f]{64}) \*?(.+)$/.exec(line.trim());
    if (m) sha256.set(m[2]!, m[1]!);
  }
  return { seconds, sha256 };
}

/** `openssl speed -evp sha256 -multi N` on 1 MiB blocks: the CPU's hashing ceiling, with no file I/O (bytes/s). */
export async function opensslSpeed(procs: number, seconds: number): Promise<number> {
  const out = await run('openssl', ['speed', '-evp', 'sha256', '-multi', String(procs), '-bytes', String(1 << 20), '-seconds', String(seconds)]);
  // The summary line: "sha256  <rate for the block size>k" (1000s of bytes per second).
  const line = out.split('\n').reverse().find((l) => /^sha256\s+[\d.]+k/i.test(l.trim()));
  const m = line ? /([\d.]+)k\s*$/.exec(line.trim()) : null;
  if (!m) throw new Error(`could not read openssl speed output: ${out.slice(-300)}`);
  return Number(m[1]) * 1000;
}

/**
 * The minimum durable work of an ingest, with the machine's tools: copy each file,
 * fsync the copies, and hash them, `procs` shell pipelines in parallel over their
 * shares. Returns the seconds taken.
 */
export async function copySyncHash(files: string[], destDir: string, procs: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    shares(files, procs).map((g, i) =>
      run('sh', ['-c', 'd="$1"; shift; mkdir -p "$d" && cp "$@" "$d"/ && sync "$d"/* "$d" && openssl dgst -sha256 "$d"/* >/dev/null', 'sh', `${destDir}/${i}`, ...g]),
    ),
  );
  return (performance.now() - t0) / 1000;
}
