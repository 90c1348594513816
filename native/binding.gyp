# wasm-blas: N-API addon running tfjs-backend-wasm matmuls on OpenBLAS, in place
# on the wasm heap. Plain C, N-API 8; needs Debian's libopenblas-dev (cblas.h,
# libopenblas.so). -O3 only: no -march, so the .node runs on any x86-64; the
# speed comes from OpenBLAS's own runtime CPU dispatch (DYNAMIC_ARCH).
{
  "targets": [
    {
      "target_name": "wasm_blas",
      "sources": ["src/addon.c", "src/args.c", "src/matmul.c", "src/segment.c", "src/unary.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags!": ["-O2"],
      "libraries": ["-lopenblas", "-lm"]
    }
  ]
}
