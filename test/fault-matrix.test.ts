// The fault matrix, short: every simulator fault (src/sim/faults.ts) alone over
// loopback; the link faults, corrupt and rogue over the pty link (socat, the real
// serialport bindings); and pairs that mix each kind with each
// other kind (link with record-time faults, two link faults, two record-time faults,
// slow and rogue with the rest). Each case is an in-process daemon
// run to idle over small synthetic clips, then checked from disk
// (test/helpers/dockInvariants.ts): the dock reached idle (a rogue fleet: refused,
// nothing stored), stored clips hash right, quarantined only the planted corrupt and
// tampered clips, gaps recorded, nothing released unstored, custody verifies; and each
// fault named left its trace, so a fault that stopped firing fails its case.
// `npm run soak -- --matrix` runs all 36 pairs over both links, with more and larger clips.
import { describe, expect, it } from 'vitest';
import { caseName, matrix, runFaultCase, type FaultCase } from './helpers/faultMatrix.js';

// Cases run a few at a time: each is mostly waiting (fsync, link timers), and one at a
// time would take minutes. More at once would make the link timers race the machine.
const AT_ONCE = 3;
let running = 0;
const waiting: (() => void)[] = [];
async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= AT_ONCE) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

const cases: FaultCase[] = [
  ...matrix(['loopback'], [
    ['ber', 'corrupt'],
    ['drop', 'tamper'],
    ['stall', 'gap'],
    ['unplug', 'corrupt'],
    ['ber', 'unplug'],
    ['drop', 'stall'],
    ['corrupt', 'tamper'],
    ['tamper', 'gap'],
    ['unplug', 'slow'],
    ['ber', 'rogue'],
  ]),
  // Unplug over pty re-docks each camera onto the same <portsDir>/<serial>, most often
  // onto the same /dev/pts/N: the case that hung now and then while the serial watcher
  // compared link targets only (test/serial-redock.test.ts pins the watcher down).
  ...matrix(['pty'], [['ber', 'stall']]).filter((c) => !['tamper', 'gap', 'slow'].includes(c.faults[0]!) || c.faults.length === 2),
];

describe.concurrent('fault matrix: each fault alone and in pairs, end to end', () => {
  for (const c of cases) {
    it(caseName(c), async ({ expect: expectHere }) => {
      const r = await slot(() => runFaultCase(c, { limitMs: 60_000 }));
      expectHere(r.problems, `${r.name} (${r.spec}): evidence ${JSON.stringify(r.evidence)}, summary ${JSON.stringify(r.summary)}`).toEqual([]);
    }, 90_000);
  }
});

describe('the matrix itself', () => {
  it('has every fault alone over loopback, and over pty each link fault, a record-time fault and rogue', () => {
    const names = cases.map(caseName);
    for (const f of ['ber', 'drop', 'stall', 'unplug']) expect(names).toContain(`${f} over pty`);
    expect(names).toContain('rogue over pty');
    expect(names).toContain('corrupt over pty');
    expect(names).toContain('unplug+slow over loopback');
    expect(new Set(names).size).toBe(names.length);
    expect(cases.filter((c) => c.faults.length === 1 && c.link === 'loopback')).toHaveLength(9);
  });
});
