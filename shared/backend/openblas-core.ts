/**
 * Which OpenBLAS kernel set ("core") a process asks for, decided from the CPU
 * flags before libopenblas loads. OpenBLAS's DYNAMIC_ARCH build picks its core
 * from cpuid family/model tables in its constructor, at dlopen, reading
 * OPENBLAS_CORETYPE there and nowhere else; on a virtual CPU whose family/model
 * it does not know (QEMU's kvm64 says Intel family 15, "Prescott") it falls
 * back to SSE3 kernels even when the CPU has AVX-512: a BERT-base matmul then
 * runs ~4x slower. So bertfleet names the core the flags support, unless the
 * user set OPENBLAS_CORETYPE (theirs always wins):
 *   AVX-512 F/BW/DQ/VL (+AVX2, FMA) -> SkylakeX, or Cooperlake with AVX512_BF16
 *   AVX2 + FMA                      -> Haswell (Zen on AMD/Hygon, OpenBLAS's own name there)
 *   anything less, unknown flags, not x86-64 -> nothing: OpenBLAS's own detection
 * On a CPU OpenBLAS knows, this names the core it would pick itself (sgemm of
 * Cooperlake and SkylakeX are the same kernels). Only flags the CPU shows are
 * ever required, so the chosen kernels cannot fault (SIGILL).
 *
 * The decision is a pure function of the environment's two values and the host
 * (/proc/cpuinfo via host-info.ts), so every process on a host decides alike.
 * `applyOpenblasCore` writes the decision into an environment object (the
 * addon loader passes process.env, whose writes on the main thread call
 * setenv(3)); a bertfleet process that set the variable also sets
 * BERTFLEET_OPENBLAS_CORETYPE to the same value, so its children know the value
 * was not the user's and decide for themselves.
 *
 * Knows OpenBLAS core names and CPU flags; knows nothing of tfjs, the addon or logging.
 */
export const CORETYPE_ENV = 'OPENBLAS_CORETYPE';
/** Set beside OPENBLAS_CORETYPE when bertfleet (not the user) chose its value. */
export const CHOSEN_BY_BERTFLEET_ENV = 'BERTFLEET_OPENBLAS_CORETYPE';

export type CoreSource = 'user' | 'cpu-flags' | 'openblas';

/** What a process asks OpenBLAS for: a core name, or nothing (its own detection). */
export type CoreChoice =
  | { source: 'user'; coretype: string; reason: string }
  | { source: 'cpu-flags'; coretype: string; reason: string }
  | { source: 'openblas'; coretype: null; reason: string };

export interface CoreHost {
  /** process.arch. */
  arch: string;
  /** /proc/cpuinfo vendor_id ('GenuineIntel', 'AuthenticAMD', ...). */
  vendor: string;
  /** Numeric CPU flags (host-info.ts NUMERIC_FLAGS); null when unknown. */
  flags: readonly string[] | null;
}

export interface CoreEnv {
  /** OPENBLAS_CORETYPE as found ('' counts as unset, as OpenBLAS's getenv check would not). */
  given: string | undefined;
  /** BERTFLEET_OPENBLAS_CORETYPE as found. */
  chosenByBertfleet: string | undefined;
}

const AVX2 = ['avx', 'avx2', 'fma'] as const;
const AVX512 = [...AVX2, 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl'] as const;

/** The CPU flags each core's kernels execute (lower-case core names); cores not listed are not checked. */
export const CORE_REQUIRED_FLAGS: Readonly<Record<string, readonly string[]>> = {
  sandybridge: ['avx'],
  haswell: AVX2,
  zen: AVX2,
  skylakex: AVX512,
  cooperlake: [...AVX512, 'avx512_bf16'],
};

/** The flags `coretype`'s kernels need that `flags` lacks ([] for cores not in CORE_REQUIRED_FLAGS). */
export function missingFlags(coretype: string, flags: readonly string[]): string[] {
  const have = new Set(flags);
  return (CORE_REQUIRED_FLAGS[coretype.toLowerCase()] ?? []).filter((f) => !have.has(f));
}

/** The decision (pure): the user's value, else the core the CPU flags support, else nothing. */
export function chooseOpenblasCore(env: CoreEnv, host: CoreHost): CoreChoice {
  const given = env.given === '' ? undefined : env.given;
  if (given !== undefined && given !== env.chosenByBertfleet) {
    return { source: 'user', coretype: given, reason: `${CORETYPE_ENV}=${given} given in the environment` };
  }
  const keep = (why: string): CoreChoice => ({ source: 'openblas', coretype: null, reason: `${why}: OpenBLAS's own detection` });
  if (host.arch !== 'x64') return keep(`${host.arch}, not x86-64`);
  if (host.flags === null) return keep('CPU flags unknown (no /proc/cpuinfo)');
  const flags = host.flags;
  const amd = host.vendor === 'AuthenticAMD' || host.vendor === 'HygonGenuine';
  const candidates = ['Cooperlake', 'SkylakeX', amd ? 'Zen' : 'Haswell'];
  const coretype = candidates.find((c) => missingFlags(c, flags).length === 0);
  if (coretype === undefined) return keep('no AVX2+FMA among the CPU flags');
  const shown = CORE_REQUIRED_FLAGS[coretype.toLowerCase()]!.join(',');
  return { source: 'cpu-flags', coretype, reason: `CPU flags ${shown} (${host.vendor})` };
}

/**
 * Decides from `env` and `host`, then makes `env` say so: on the main thread it
 * sets (or, when the decision is OpenBLAS's own, removes an inherited bertfleet
 * value of) OPENBLAS_CORETYPE with its marker. A worker thread's env is a copy
 * whose writes never reach OpenBLAS's getenv, so there it only reports: the
 * choice holds when the main thread made it before starting the thread.
 */
export function applyOpenblasCore(env: Record<string, string | undefined>, host: CoreHost, mainThread: boolean): CoreChoice {
  const choice = chooseOpenblasCore({ given: env[CORETYPE_ENV], chosenByBertfleet: env[CHOSEN_BY_BERTFLEET_ENV] }, host);
  if (choice.source === 'user') return choice;
  const want = choice.coretype ?? undefined;
  if (env[CORETYPE_ENV] === want) return choice;
  if (!mainThread) {
    return {
      source: 'openblas',
      coretype: null,
      reason:
        `not applied: OpenBLAS was first loaded in a worker thread, whose environment writes do not reach it ` +
        `(wanted ${want ?? 'its own detection'} for ${choice.reason}; the main thread must decide before starting the thread)`,
    };
  }
  if (want === undefined) {
    delete env[CORETYPE_ENV];
    delete env[CHOSEN_BY_BERTFLEET_ENV];
  } else {
    env[CORETYPE_ENV] = want;
    env[CHOSEN_BY_BERTFLEET_ENV] = want;
  }
  return choice;
}
