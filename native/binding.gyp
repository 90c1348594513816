# wasm-blas: N-API addon running tfjs-backend-wasm matmuls on OpenBLAS, in place
# on the wasm heap, plus the training step's flat-vector kernels. Plain C, N-API
# 8; needs Debian's libopenblas-dev (cblas.h, libopenblas.so). -O3 only: no
# -march, so the .node runs on any x86-64; the speed comes from OpenBLAS's own
# runtime CPU dispatch (DYNAMIC_ARCH) and vector.c's target_clones.
#
# vector.c is its own static library so it gets its own flags: its loops must
# round exactly as the JS loops they mirror, so no a*b+c is ever fused
# (-ffp-contract=off; never -ffast-math, which vector.c refuses), and
# -fno-math-errno lets sqrt vectorize (errno is never read; values are
# unchanged). -fPIC: it is linked into a shared object.
#
# gelu.c, xent.c and softmax.c (fast_kernels) compute exp/erf by polynomials in plain
# float arithmetic (fastmath.h), and layernorm.c sums rows over fixed lanes: -ffp-contract=off keeps their bytes the same
# on every machine and vector width; -fno-trapping-math (FP exceptions are never
# read; values are unchanged) lets their clamps become selects, so they vectorise.
{
  "targets": [
    {
      "target_name": "vector_kernels",
      "type": "static_library",
      "sources": ["src/vector.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fPIC", "-ffp-contract=off", "-fno-math-errno"],
      "cflags!": ["-O2"]
    },
    {
      "target_name": "fast_kernels",
      "type": "static_library",
      "sources": ["src/gelu.c", "src/xent.c", "src/layernorm.c", "src/softmax.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fPIC", "-ffp-contract=off", "-fno-trapping-math"],
      "cflags!": ["-O2"]
    },
    {
      "target_name": "wasm_blas",
      "dependencies": ["vector_kernels", "fast_kernels"],
      "sources": ["src/addon.c", "src/args.c", "src/matmul.c", "src/segment.c", "src/unary.c", "src/sum.c", "src/gather.c", "src/dropout.c", "src/transpose.c", "src/head_matmul.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags!": ["-O2"],
      "libraries": ["-lopenblas", "-lm"]
    }
  ]
}
