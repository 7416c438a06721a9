// The benchmark runner: `npm run bench` (full, under 15 minutes) or
// `npm run bench -- --quick` (under two minutes, smaller sizes).
//
//   build dist/ if stale ─► each suite in turn ─► table on stdout
//                                              ─► bench/results.json (array of rows)
//                                              ─► bench/results.md (the README's table)
//
// Every figure is a ratio against a baseline measured in the same run on the same
// bytes (the machines are shared and noisy); see bench/types.ts for a row's fields
// and bench/row.ts for how a target string is judged. A suite that throws, or
// whose file is not there yet, becomes a failing row and the others still run.
//
// Options: --quick; --only verify,link (suite names); --strict (exit 1 when a
// target is missed; by default a missed target is a result, not an error).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { failedRow, judge, subject } from './row.js';
import type { BenchResult, Suite } from './types.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');

// The daemon's entry (bin/dockside.cjs) gives libuv 16 threads so eight bays' fsyncs
// do not starve file reads; the in-process ingest must run the same way. The size is
// fixed when the pool first starts, before this module runs, so start again with it.
if (!process.env.UV_THREADPOOL_SIZE) {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, UV_THREADPOOL_SIZE: '16' } });
  process.exit(r.status ?? 1);
}

/** In run order. upload and state are another engineer's; they load the same way. */
const SUITES = ['verify', 'link', 'ingest', 'memory', 'upload', 'state'] as const;
const SUITE_DEADLINE_MS = { quick: 90_000, full: 600_000 };

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const strict = args.includes('--strict');
const onlyArg = args.find((a) => a.startsWith('--only'));
const only = onlyArg ? (onlyArg.includes('=') ? onlyArg.split('=')[1]! : args[args.indexOf(onlyArg) + 1] ?? '').split(',').filter(Boolean) : [];
for (const o of only) if (!(SUITES as readonly string[]).includes(o)) throw new Error(`--only: no suite ${JSON.stringify(o)}; suites are ${SUITES.join(', ')}`);

const say = (line: string): void => void process.stderr.write(`${line}\n`);

/** dist/ is what the child-process benchmarks and the hash pool's workers run: rebuild it when any source is newer. */
function ensureBuilt(): string | undefined {
  const src = join(ROOT, 'src');
  const stale = (dir: string): boolean => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (stale(p)) return true;
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) {
        const out = join(ROOT, 'dist', relative(src, p)).replace(/\.ts$/, '.js');
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(p).mtimeMs) return true;
      }
    }
    return false;
  };
  if (!stale(src)) return undefined;
  say('[bench] dist/ is older than src/: building it (npm run build, incrementally)');
  const t0 = performance.now();
  // The same compile as `npm run build`; the build info kept under node_modules/.cache
  // makes the next one recheck only what changed (about 60% less time here).
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--incremental', '--tsBuildInfoFile', join(ROOT, 'node_modules', '.cache', 'dockside-bench.tsbuildinfo')], { cwd: ROOT, encoding: 'utf8' });
  say(`[bench] build ${r.status === 0 ? 'done' : `exited ${r.status}`} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // tsc still emits when some file has a type error (another engineer's work in
  // progress); the benchmarks then run what was emitted, and the table says so.
  return r.status === 0 ? undefined : `the build reported errors (${(r.stdout + r.stderr).split('\n').find((l) => l.includes('error')) ?? 'see npm run build'}); dist/ is what tsc emitted anyway`;
}

async function loadSuite(name: string): Promise<Suite | string> {
  const file = join(HERE, `${name}.ts`);
  if (!existsSync(file)) return `missing: bench/${name}.ts is not written yet`;
  const mod = (await import(pathToFileURL(file).href)) as { suite?: Suite; default?: Suite };
  const s = mod.suite ?? mod.default;
  return typeof s === 'function' ? s : `bench/${name}.ts exports no suite (export const suite: Suite)`;
}

/** A row is kept as the suite gave it, except that a pass its own target contradicts is not believed. */
function checked(r: BenchResult): BenchResult {
  const verdict = judge(r.target, subject(r.target, r.value, r.baseline, r.ratio));
  if (verdict === undefined || verdict === r.pass) return r;
  return { ...r, pass: verdict, note: `${r.note ? `${r.note}; ` : ''}runner: pass=${r.pass} disagreed with target ${r.target}` };
}

async function runSuite(name: string, log: (l: string) => void): Promise<BenchResult[]> {
  const s = await loadSuite(name);
  if (typeof s === 'string') return [failedRow(name, s)];
  const deadline = SUITE_DEADLINE_MS[quick ? 'quick' : 'full'];
  let timer: NodeJS.Timeout | undefined;
  try {
    const rows = await Promise.race([
      s({ quick, log }),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${deadline / 1000} s`)), deadline))),
    ]);
    return rows.length > 0 ? rows.map(checked) : [failedRow(name, 'the suite returned no rows')];
  } catch (err) {
    return [failedRow(name, `the suite threw: ${err instanceof Error ? err.message : String(err)}`)];
  } finally {
    clearTimeout(timer);
  }
}

function fmt(x: number | null): string {
  if (x === null) return '—';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1000 ? x.toFixed(0) : a >= 100 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
}

function markdown(rows: BenchResult[], header: string): string {
  const esc = (s: string): string => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [header, '', '| benchmark | value | unit | baseline | ratio | target | pass | note |', '|---|---:|---|---:|---:|---|:---:|---|'];
  for (const r of rows) lines.push(`| ${esc(r.name)} | ${fmt(r.value)} | ${esc(r.unit)} | ${fmt(r.baseline)} | ${fmt(r.ratio)} | ${esc(r.target)} | ${r.pass ? 'yes' : '**no**'} | ${esc(r.note ?? '')} |`);
  return `${lines.join('\n')}\n`;
}

function table(rows: BenchResult[]): string {
  const cols = rows.map((r) => [r.name, fmt(r.value), r.unit, fmt(r.baseline), fmt(r.ratio), r.target, r.pass ? 'pass' : 'FAIL']);
  const head = ['benchmark', 'value', 'unit', 'baseline', 'ratio', 'target', ''];
  const w = head.map((h, i) => Math.max(h.length, ...cols.map((c) => c[i]!.length)));
  const line = (c: string[]): string => c.map((x, i) => (i === 1 || i === 3 || i === 4 ? x.padStart(w[i]!) : x.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), ...cols.map(line)].join('\n');
}

const started = performance.now();
const rows: BenchResult[] = [];
const buildProblem = ensureBuilt();
for (const name of SUITES) {
  if (only.length > 0 && !only.includes(name)) continue;
  const t0 = performance.now();
  say(`[${name}] start`);
  const got = await runSuite(name, (l) => say(`[${name}] ${l}`));
  if (buildProblem && (name === 'memory' || name === 'state')) for (const r of got) r.note = `${r.note ? `${r.note}; ` : ''}${buildProblem}`;
  rows.push(...got);
  say(`[${name}] done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const seconds = (performance.now() - started) / 1000;

const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
const header = `Benchmarks (${quick ? '`npm run bench -- --quick`: smaller sizes' : '`npm run bench`: full sizes'}), ${new Date().toISOString().slice(0, 10)}, ${availableParallelism()} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}; ${seconds.toFixed(0)} s in all. Each ratio is against a baseline measured in the same run on the same bytes.`;
writeFileSync(join(HERE, 'results.json'), `${JSON.stringify(rows, null, 2)}\n`);
writeFileSync(join(HERE, 'results.md'), markdown(rows, header));
console.log(table(rows));
const failed = rows.filter((r) => !r.pass).length;
console.log(`\n${rows.length - failed}/${rows.length} targets met in ${seconds.toFixed(0)} s; bench/results.json and bench/results.md written`);
// Suites close what they open; anything left (a timed-out suite) must not keep us here.
process.exit(strict && failed > 0 ? 1 : 0);
