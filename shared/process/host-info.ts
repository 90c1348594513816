/**
 * What of the host can change a float's last bit without changing the code:
 * the C library (its libm serves native code such as OpenBLAS and
 * libtensorflow), the CPU architecture, vendor and the instruction-set
 * extensions numeric kernels dispatch on (AVX, FMA, AVX-512, NEON/SVE...).
 * The one reader of /proc/cpuinfo and process.report; where /proc is absent
 * (macOS, a locked-down container) the CPU part says `unknown`, which only
 * ever equals another `unknown`.
 *
 * Knows nothing of backends, fingerprints or the wire.
 */
import { readFileSync } from 'node:fs';

export interface HostNumerics {
  /** process.arch: 'x64', 'arm64', ... */
  arch: string;
  /** 'glibc-2.36', 'musl' or 'unknown'. */
  libc: string;
  /** /proc/cpuinfo's vendor_id (x86) or CPU implementer (arm); 'unknown' without /proc. */
  cpuVendor: string;
  /** The flags of NUMERIC_FLAGS the CPU has, in that order; null when /proc/cpuinfo could not be read. */
  cpuFlags: string[] | null;
}

/**
 * CPU features that select different numeric kernels (SIMD width, fused
 * multiply-add, reduced-precision dot products): x86 first, then arm.
 * Flags outside this list (virtualisation, security, power) change no result.
 */
export const NUMERIC_FLAGS: readonly string[] = [
  'sse2', 'pni', 'ssse3', 'sse4_1', 'sse4_2', 'avx', 'f16c', 'fma', 'fma4', 'avx2',
  'avx512f', 'avx512dq', 'avx512cd', 'avx512bw', 'avx512vl', 'avx512ifma', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_tile',
  'fp', 'asimd', 'asimdhp', 'fphp', 'asimddp', 'asimdfhm', 'sve', 'sve2', 'bf16', 'i8mm',
];

/** The vendor and the numeric flags of the first processor in a /proc/cpuinfo text. */
export function parseCpuinfo(text: string): { vendor: string; flags: string[] } {
  const field = (names: readonly string[]): string | undefined => {
    for (const line of text.split('\n')) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      if (names.includes(line.slice(0, colon).trim())) return line.slice(colon + 1).trim();
    }
    return undefined;
  };
  // x86 says `vendor_id` and `flags`; arm says `CPU implementer` and `Features`.
  const vendor = field(['vendor_id', 'CPU implementer']) ?? 'unknown';
  const have = new Set((field(['flags', 'Features']) ?? '').split(/\s+/).filter((f) => f !== ''));
  return { vendor, flags: NUMERIC_FLAGS.filter((f) => have.has(f)) };
}

/** glibc's runtime version from the process report, else musl if its loader is mapped, else 'unknown'. */
export function libcOf(report: { header?: { glibcVersionRuntime?: unknown }; sharedObjects?: unknown }): string {
  const glibc = report.header?.glibcVersionRuntime;
  if (typeof glibc === 'string' && glibc !== '') return `glibc-${glibc}`;
  const objects = Array.isArray(report.sharedObjects) ? report.sharedObjects : [];
  return objects.some((o) => typeof o === 'string' && /(^|\/)(ld-musl|libc\.musl)/.test(o)) ? 'musl' : 'unknown';
}

let cached: HostNumerics | undefined;

/** This process's host, read once. */
export function hostNumerics(): HostNumerics {
  if (cached !== undefined) return cached;
  let cpu: { vendor: string; flags: string[] | null };
  try {
    cpu = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch (err) {
    // No /proc (macOS, a sandbox): the CPU is unknown, and says so in the fingerprint.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'EACCES') throw err;
    cpu = { vendor: 'unknown', flags: null };
  }
  cached = { arch: process.arch, libc: libcOf(processReport()), cpuVendor: cpu.vendor, cpuFlags: cpu.flags };
  return cached;
}

/** The process report's header and shared objects; sockets are left out (listing them may resolve their peers' names). */
function processReport(): { header?: { glibcVersionRuntime?: unknown }; sharedObjects?: unknown } {
  const report = process.report as (NodeJS.ProcessReport & { excludeNetwork?: boolean }) | undefined;
  if (report === undefined) return {};
  const before = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    return report.getReport() as { header?: { glibcVersionRuntime?: unknown }; sharedObjects?: unknown };
  } finally {
    report.excludeNetwork = before ?? false;
  }
}
