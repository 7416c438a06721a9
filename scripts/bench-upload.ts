/**
 * The upload benchmark alone (it lives in bench/upload.ts, run with the others by
 * bench/run.ts): the S3 sink ÷ rclone to a local s3rver, one row per comparison.
 *
 *   npx tsx scripts/bench-upload.ts [--quick]
 */
import { suite } from '../bench/upload.js';

const rows = await suite({ quick: process.argv.includes('--quick'), log: (line) => process.stderr.write(`upload: ${line}\n`) });
for (const r of rows) {
  const ratio = r.ratio === null ? '' : `  ratio ${r.ratio.toFixed(2)} (target ${r.target})`;
  process.stdout.write(`${r.pass ? 'pass' : 'FAIL'}  ${r.name.padEnd(42)} ${r.value.toFixed(1).padStart(7)} ${r.unit}  baseline ${r.baseline === null ? '-' : r.baseline.toFixed(1)}${ratio}\n      ${r.note ?? ''}\n`);
}
