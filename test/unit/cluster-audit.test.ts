/**
 * The gradient audit's pure parts and the fingerprint's host fields: digests
 * of a gradient name the first tensor that differs; the plan picks micro-batch
 * `step mod M`, its owner and another live worker; the book compares two
 * digests when both are in (a difference is a GradientAuditError naming the
 * step, the micro-batch, both workers, both fingerprints and the tensor),
 * drops an audit whose worker left; /proc/cpuinfo and the process report are
 * read into the C library and the numeric CPU flags.
 */
import { describe, expect, it } from 'vitest';
import { AuditBook, type ReportedDigest } from '../../coordinator/audit-book.js';
import { auditDue, planAudit } from '../../coordinator/audit-plan.js';
import { partition } from '../../coordinator/partition.js';
import { compareDigests, gradientDigest } from '../../shared/cluster/gradient-digest.js';
import { GradientAuditError, ProtocolError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { libcOf, parseCpuinfo } from '../../shared/process/host-info.js';

/** Three tensors of 2, 3 and 1 values. */
const LAYOUT = { specs: [{ name: 'a.weight' }, { name: 'b.weight' }, { name: 'c.bias' }], offsets: [0, 2, 5], total: 6 };
const GRAD = Float32Array.of(0.5, -1, 2, 3, 1e-8, 7);
const STATS = '{"sequences":4,"lossSum":1.5}';

function flipped(at: number): Float32Array {
  const g = GRAD.slice();
  new Uint32Array(g.buffer)[at]! ^= 1;
  return g;
}

describe('gradient digests', () => {
  it('gives equal digests for equal bytes and one CRC-32 per tensor', () => {
    const d = gradientDigest(GRAD, LAYOUT, STATS);
    expect(d.tensors.map((t) => t.name)).toEqual(['a.weight', 'b.weight', 'c.bias']);
    expect(d.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(compareDigests(d, gradientDigest(GRAD.slice(), LAYOUT, STATS))).toBeNull();
  });

  it('names the first tensor whose bytes differ, for a one-bit flip anywhere', () => {
    const d = gradientDigest(GRAD, LAYOUT, STATS);
    const names = ['a.weight', 'a.weight', 'b.weight', 'b.weight', 'b.weight', 'c.bias'];
    for (let i = 0; i < GRAD.length; i++) {
      const diff = compareDigests(d, gradientDigest(flipped(i), LAYOUT, STATS));
      expect(diff?.tensor, `bit flipped in value ${i}`).toBe(names[i]);
      expect(diff?.detail).toMatch(new RegExp(`^first differing tensor: ${names[i]!.replace('.', '\\.')} \\(crc32 0x[0-9a-f]{8} against 0x[0-9a-f]{8}\\)$`));
    }
    // Two tensors differ: the first in table order is named.
    const two = flipped(5);
    new Uint32Array(two.buffer)[3]! ^= 1;
    expect(compareDigests(d, gradientDigest(two, LAYOUT, STATS))?.tensor).toBe('b.weight');
  });

  it('reports stats that differ over equal gradients, and tensor lists that differ', () => {
    const d = gradientDigest(GRAD, LAYOUT, STATS);
    expect(compareDigests(d, gradientDigest(GRAD, LAYOUT, '{"sequences":4,"lossSum":1.25}'))).toEqual({
      tensor: null, detail: 'the gradients are equal but the stats differ: {"sequences":4,"lossSum":1.5} against {"sequences":4,"lossSum":1.25}',
    });
    const renamed = { ...d, sha256: 'x', tensors: d.tensors.map((t, i) => (i === 1 ? { ...t, name: 'other' } : t)) };
    expect(compareDigests(d, renamed)?.detail).toBe('the tensor lists differ at position 1: b.weight against other');
    expect(compareDigests(d, { ...d, sha256: 'x', tensors: d.tensors.slice(1) })?.detail).toBe('the tensor lists differ: 3 tensors against 2');
  });
});

describe('audit plan', () => {
  it('is due when the completed steps reach a multiple of auditEverySteps; 0 is off', () => {
    expect([0, 1, 2, 3, 4, 5].filter((s) => auditDue(2, s))).toEqual([1, 3, 5]);
    expect([0, 1, 2].every((s) => auditDue(1, s))).toBe(true);
    expect([0, 1, 49, 50].some((s) => auditDue(0, s))).toBe(false);
  });

  it('takes micro-batch step mod M, its owner, and the next live worker after it as auditor', () => {
    const blocks = partition(3, ['a', 'b']); // a: [0, 2), b: [2, 3)
    expect(planAudit(0, 3, blocks, ['a', 'b'])).toEqual({ index: 0, owner: 'a', auditor: 'b' });
    expect(planAudit(5, 3, blocks, ['b', 'a'])).toEqual({ index: 2, owner: 'b', auditor: 'a' });
    // A live worker without a block (a straggler given nothing) can audit.
    expect(planAudit(4, 3, partition(3, ['a']), ['a', 'c'])).toEqual({ index: 1, owner: 'a', auditor: 'c' });
    expect(planAudit(2, 3, partition(3, ['a', 'b', 'c']), ['a', 'b', 'c'])).toEqual({ index: 2, owner: 'c', auditor: 'a' });
  });

  it('plans nothing with a single live worker', () => {
    expect(planAudit(1, 3, partition(3, ['a']), ['a'])).toBeNull();
  });
});

describe('audit book', () => {
  const digest = (grad: Float32Array, fingerprint: string): ReportedDigest => ({ ...gradientDigest(grad, LAYOUT, STATS), fingerprint });

  function book(): { audits: AuditBook; failures: GradientAuditError[] } {
    const failures: GradientAuditError[] = [];
    return { audits: new AuditBook({ log: silentLogger(), onMismatch: (e) => failures.push(e) }), failures };
  }

  it('compares when the second digest arrives, in either order', () => {
    const { audits, failures } = book();
    audits.expect('pretrain', 3, { index: 0, owner: 'a', auditor: 'b' });
    expect(audits.report('b', 'pretrain', 3, 0, digest(GRAD, 'fp'))).toBe('waiting');
    expect(audits.report('a', 'pretrain', 3, 0, digest(GRAD, 'fp'))).toBe('match');
    expect([audits.passed, audits.waiting, failures]).toEqual([1, 0, []]);
    // Compared already: a late duplicate is ignored.
    expect(audits.report('a', 'pretrain', 3, 0, digest(GRAD, 'fp'))).toBe('dropped');
  });

  it('fails with a GradientAuditError naming the step, the micro-batch, both workers, both fingerprints and the tensor', () => {
    const { audits, failures } = book();
    audits.expect('finetune', 7, { index: 1, owner: 'w-a', auditor: 'w-b' });
    audits.report('w-a', 'finetune', 7, 1, digest(GRAD, 'backend=wasm-blas;libc=glibc-2.36'));
    expect(audits.report('w-b', 'finetune', 7, 1, digest(flipped(5), 'backend=wasm-blas;libc=musl'))).toBe('mismatch');
    expect(failures).toHaveLength(1);
    const err = failures[0]!;
    expect(err).toBeInstanceOf(GradientAuditError);
    expect(err.message).toContain('gradient audit of finetune step 7, micro-batch 1: workers w-a and w-b computed different gradients; first differing tensor: c.bias');
    expect(err.message).toContain(`w-a: sha256 ${digest(GRAD, '').sha256}, fingerprint backend=wasm-blas;libc=glibc-2.36.`);
    expect(err.message).toContain(`w-b: sha256 ${digest(flipped(5), '').sha256}, fingerprint backend=wasm-blas;libc=musl`);
  });

  it('drops the audits of a worker that left, and refuses a digest from a worker not asked', () => {
    const { audits, failures } = book();
    audits.expect('pretrain', 1, { index: 1, owner: 'a', auditor: 'b' });
    audits.expect('pretrain', 2, { index: 2, owner: 'c', auditor: 'd' });
    expect(() => audits.report('x', 'pretrain', 2, 2, digest(GRAD, 'fp'))).toThrow(ProtocolError);
    expect(() => audits.report('c', 'pretrain', 2, 0, digest(GRAD, 'fp'))).toThrow(/expected micro-batch 2, got 0/);
    audits.report('a', 'pretrain', 1, 1, digest(GRAD, 'fp'));
    audits.drop('b', 'left (error)');
    expect([audits.waiting, audits.dropped]).toEqual([1, 1]);
    expect(audits.report('b', 'pretrain', 1, 1, digest(flipped(0), 'fp'))).toBe('dropped');
    expect(failures).toEqual([]);
  });

  it('settles at once with nothing out, and drops what is still out after the timeout', async () => {
    const { audits } = book();
    await audits.settled(10_000);
    audits.expect('pretrain', 4, { index: 0, owner: 'a', auditor: 'b' });
    await audits.settled(20);
    expect([audits.waiting, audits.dropped]).toEqual([0, 1]);
  });
});

describe('host numerics', () => {
  it('reads the vendor and the numeric flags of an x86 /proc/cpuinfo, in a fixed order', () => {
    const text = 'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 hypervisor fma avx sse4_2 avx512f aes\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n';
    expect(parseCpuinfo(text)).toEqual({ vendor: 'AuthenticAMD', flags: ['sse2', 'sse4_2', 'avx', 'fma', 'avx2', 'avx512f'] });
  });

  it('reads an arm /proc/cpuinfo (CPU implementer, Features)', () => {
    const text = 'processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp sve\nCPU implementer\t: 0x41\n';
    expect(parseCpuinfo(text)).toEqual({ vendor: '0x41', flags: ['fp', 'asimd', 'asimdhp', 'fphp', 'sve'] });
  });

  it('says unknown when the text has neither', () => {
    expect(parseCpuinfo('')).toEqual({ vendor: 'unknown', flags: [] });
  });

  it('names glibc with its version, musl by its loader, else unknown', () => {
    expect(libcOf({ header: { glibcVersionRuntime: '2.36' }, sharedObjects: ['/lib/x86_64-linux-gnu/libc.so.6'] })).toBe('glibc-2.36');
    expect(libcOf({ header: {}, sharedObjects: ['/usr/local/bin/node', '/lib/ld-musl-x86_64.so.1'] })).toBe('musl');
    expect(libcOf({ header: {} })).toBe('unknown');
  });
});
