import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalJson } from './canonicalJson.js';

describe('canonicalJson', () => {
  it('sorts keys at every level and writes no white space', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  it('gives the same bytes whatever the key order of the input', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: fc.constantFrom(...'abcdefgh'), maxLength: 4 }), fc.integer()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(obj));
        expect(JSON.parse(canonicalJson(obj))).toEqual(obj);
      }),
    );
  });

  it('refuses floats, unsafe integers and non-ASCII strings', () => {
    expect(() => canonicalJson({ a: 1.5 })).toThrow(/safe integers/);
    expect(() => canonicalJson({ a: 2 ** 60 })).toThrow(/safe integers/);
    expect(() => canonicalJson({ a: 'é' })).toThrow(/printable ASCII/);
    expect(() => canonicalJson({ a: 'line\nbreak' })).toThrow(/printable ASCII/);
  });
});
