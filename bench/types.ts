// The contract between bench/run.ts and each benchmark suite.
//
// Every figure is a ratio against a baseline measured in the same run on the
// same bytes, because the machines are shared and noisy. A row says which way
// its ratio points in `target` (e.g. ">= 0.90", "<= 150 MB"), so a reader can
// check `pass` by hand.
//
// Each bench/<suite>.ts exports its suite as `suite` (or as the default export);
// bench/run.ts imports it by file name, so a missing file is a "missing" row, not
// a crash.

export interface BenchResult {
  name: string; // stable id, e.g. "verify.pool-vs-openssl"
  value: number; // what was measured, in `unit`
  unit: string; // e.g. "GB/s", "MB/s", "MB", "s"
  baseline: number | null; // the same-run reference, in `unit`; null for absolute targets
  ratio: number | null; // value / baseline (or baseline / value where lower is better; the note says so)
  target: string; // what ratio (or value, for absolute targets) is compared with, e.g. ">= 0.90"
  pass: boolean; // computed from the figures above, never set by hand
  note?: string; // how it was measured, why a target may be wrong, or the error that stopped the suite
}

export interface SuiteOptions {
  quick: boolean; // smaller sizes, so that the whole quick run stays under two minutes
  log: (line: string) => void; // progress lines; the runner prefixes the suite name
}

export type Suite = (opts: SuiteOptions) => Promise<BenchResult[]>;
