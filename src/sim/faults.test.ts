import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DockError } from '../errors.js';
import { formatFaults, NO_FAULTS, parseFaults, type Faults } from './faults.js';

const FULL = 'ber=1e-5,drop=0.01,stall=0.02,unplug=0.3,corrupt=1,tamper=1,gap=1,rogue,slow=4';

/** The DockError parseFaults throws for `spec` (fails the test if it does not throw one). */
function refusal(spec: string): DockError {
  try {
    parseFaults(spec);
  } catch (err) {
    expect(err).toBeInstanceOf(DockError);
    expect((err as DockError).code).toBe('SIM_BAD_FAULTS');
    return err as DockError;
  }
  throw new Error(`parseFaults(${JSON.stringify(spec)}) accepted a bad spec`);
}

describe('parseFaults', () => {
  it('parses the full vocabulary', () => {
    expect(parseFaults(FULL)).toEqual({ ber: 1e-5, drop: 0.01, stall: 0.02, unplug: 0.3, corrupt: 1, tamper: 1, gap: 1, rogue: true, slow: 4 });
  });

  it('gives no faults for nothing, blanks and "none", and tolerates spaces around parts', () => {
    for (const spec of [undefined, '', '  ', 'none']) expect(parseFaults(spec)).toEqual(NO_FAULTS);
    expect(parseFaults(' drop = 0.5 , rogue ,')).toEqual({ ...NO_FAULTS, drop: 0.5, rogue: true });
  });

  it('returns a fresh object, never the shared NO_FAULTS', () => {
    const f = parseFaults('');
    f.drop = 1;
    expect(NO_FAULTS.drop).toBe(0);
  });

  it('refuses an unknown fault, naming it and the known ones', () => {
    expect(refusal('drop=0.1,wobble=3').message).toMatch(/unknown fault "wobble" \(known: ber, drop, stall, unplug, corrupt, tamper, gap, rogue, slow\)/);
  });

  // Regression: `name in SPEC` also finds Object.prototype members, so these passed as faults.
  it('refuses names inherited from Object.prototype as unknown faults', () => {
    for (const name of ['toString', 'constructor', 'hasOwnProperty', '__proto__']) {
      expect(refusal(`${name}=1`).message).toContain(`unknown fault "${name}"`);
    }
  });

  it('refuses a fault that needs a value and has none', () => {
    expect(refusal('ber').message).toContain('"ber" needs a value');
    expect(refusal('corrupt=').message).toContain('"corrupt" needs a value');
  });

  it('refuses a value that is not a number', () => {
    expect(refusal('drop=often').message).toContain('"drop=often" is not a number');
    expect(refusal('slow=Infinity').message).toContain('"slow=Infinity" is not a number');
  });

  it('refuses values out of range for each kind', () => {
    expect(refusal('ber=0.1').message).toContain('"ber" must be from 0 to 0.01, got 0.1');
    expect(refusal('drop=1.5').message).toContain('"drop" must be from 0 to 1, got 1.5');
    expect(refusal('stall=-0.1').message).toContain('"stall" must be from 0 to 1, got -0.1');
    expect(refusal('unplug=2').message).toContain('"unplug" must be from 0 to 1');
    expect(refusal('corrupt=1.5').message).toContain('"corrupt" must be a whole number of clips, got 1.5');
    expect(refusal('tamper=-1').message).toContain('"tamper" must be a whole number');
    expect(refusal('gap=10001').message).toContain('"gap" must be a whole number');
    expect(refusal('slow=0.5').message).toContain('"slow" must be a factor from 1 to 1000, got 0.5');
  });

  it('refuses a fault given twice', () => {
    expect(refusal('drop=0.1,ber=1e-6,drop=0.2').message).toContain('"drop" is given twice');
    expect(refusal('rogue,rogue').message).toContain('"rogue" is given twice');
  });

  it('refuses a value on rogue', () => {
    expect(refusal('rogue=yes').message).toContain('"rogue" takes no value');
    expect(parseFaults('rogue=1').rogue).toBe(true);
  });

  it('quotes the whole spec and an example in the message, and the spec in details', () => {
    const err = refusal('drop=2');
    expect(err.message).toContain('bad fault spec "drop=2"');
    expect(err.message).toContain(FULL);
    expect(err.details).toEqual({ spec: 'drop=2' });
  });
});

describe('formatFaults', () => {
  it('formats no faults as "none" and the full vocabulary in canonical order', () => {
    expect(formatFaults({ ...NO_FAULTS })).toBe('none');
    expect(formatFaults(parseFaults('slow=4,rogue,gap=1,tamper=1,corrupt=1,unplug=0.3,stall=0.02,drop=0.01,ber=1e-5'))).toBe(
      'ber=0.00001,drop=0.01,stall=0.02,unplug=0.3,corrupt=1,tamper=1,gap=1,rogue,slow=4',
    );
  });

  it('round trips any valid set of faults through parseFaults', () => {
    const faults: fc.Arbitrary<Faults> = fc.record({
      ber: fc.double({ min: 0, max: 0.01, noNaN: true }),
      drop: fc.double({ min: 0, max: 1, noNaN: true }),
      stall: fc.double({ min: 0, max: 1, noNaN: true }),
      unplug: fc.double({ min: 0, max: 1, noNaN: true }),
      corrupt: fc.nat(10000),
      tamper: fc.nat(10000),
      gap: fc.nat(10000),
      rogue: fc.boolean(),
      slow: fc.double({ min: 1, max: 1000, noNaN: true }),
    });
    fc.assert(
      fc.property(faults, (f) => {
        expect(parseFaults(formatFaults(f))).toEqual(f);
      }),
      { numRuns: 500 },
    );
    expect(parseFaults(formatFaults(parseFaults(FULL)))).toEqual(parseFaults(FULL));
  });
});
