/*
 * Argument parsing and validation for the wasm-blas addon (see args.h). Every
 * failure throws a JS Error "<argument>: expected ..., got ..." and returns
 * false; callers return NULL immediately so the exception reaches JS.
 */
#include "args.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

/* 2^53: the largest range in which a JS number holds every integer exactly. */
#define WB_MAX_SAFE_INT 9007199254740992.0

bool wb_fail(napi_env env, const char *name, const char *fmt, ...) {
  char detail[384];
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  snprintf(message, sizeof message, "wasm-blas addon: %s: %s", name, detail);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_WASM_BLAS_ARG", message);
  return false;
}

static const char *type_name(napi_valuetype t) {
  switch (t) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

bool wb_heap_args(napi_env env, napi_callback_info info, const char *fn, napi_value argv[2]) {
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 2) return wb_fail(env, fn, "expected 2 arguments (heap, spec), got %zu", argc);
  return true;
}

bool wb_get_heap(napi_env env, napi_value value, wb_heap *out) {
  bool is_ab = false;
  if (napi_is_arraybuffer(env, value, &is_ab) != napi_ok || !is_ab) {
    napi_valuetype t = napi_undefined;
    napi_typeof(env, value, &t);
    return wb_fail(env, "heap", "expected an ArrayBuffer (wasm.HEAPU8.buffer), got %s%s",
                   type_name(t), t == napi_object ? " that is not an ArrayBuffer (SharedArrayBuffer?)" : "");
  }
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, value, &detached) != napi_ok) {
    return wb_fail(env, "heap", "expected a queryable ArrayBuffer, got an N-API failure");
  }
  if (detached) {
    return wb_fail(env, "heap",
                   "expected a live ArrayBuffer, got a detached one (the wasm memory grew; "
                   "fetch wasm.HEAPU8.buffer again right before the call)");
  }
  void *data = NULL;
  size_t len = 0;
  if (napi_get_arraybuffer_info(env, value, &data, &len) != napi_ok || data == NULL) {
    return wb_fail(env, "heap", "expected ArrayBuffer storage, got none");
  }
  out->data = (uint8_t *)data;
  out->byte_length = (uint64_t)len;
  return true;
}

bool wb_has(napi_env env, napi_value obj, const char *name, bool *out) {
  napi_value v;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) {
    return wb_fail(env, name, "expected a readable property, got a throwing getter");
  }
  napi_valuetype t;
  napi_typeof(env, v, &t);
  *out = !(t == napi_undefined || t == napi_null);
  return true;
}

static bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *v,
                     napi_valuetype *t) {
  if (napi_get_named_property(env, obj, name, v) != napi_ok) {
    return wb_fail(env, name, "expected a readable property, got a throwing getter");
  }
  napi_typeof(env, *v, t);
  return true;
}

static bool to_int(napi_env env, const char *name, napi_value v, napi_valuetype t, int64_t min,
                   int64_t max, int64_t *out) {
  if (t != napi_number) {
    return wb_fail(env, name, "expected an integer in [%lld, %lld], got %s", (long long)min,
                   (long long)max, type_name(t));
  }
  double d = 0;
  napi_get_value_double(env, v, &d);
  if (!isfinite(d) || floor(d) != d || fabs(d) > WB_MAX_SAFE_INT || d < (double)min ||
      d > (double)max) {
    return wb_fail(env, name, "expected an integer in [%lld, %lld], got %.17g", (long long)min,
                   (long long)max, d);
  }
  *out = (int64_t)d;
  return true;
}

bool wb_get_int(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max,
                int64_t *out) {
  napi_value v;
  napi_valuetype t;
  if (!get_prop(env, obj, name, &v, &t)) return false;
  return to_int(env, name, v, t, min, max, out);
}

bool wb_get_int_opt(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max,
                    int64_t fallback, int64_t *out) {
  napi_value v;
  napi_valuetype t;
  if (!get_prop(env, obj, name, &v, &t)) return false;
  if (t == napi_undefined || t == napi_null) {
    *out = fallback;
    return true;
  }
  return to_int(env, name, v, t, min, max, out);
}

bool wb_get_bool(napi_env env, napi_value obj, const char *name, bool *out) {
  napi_value v;
  napi_valuetype t;
  if (!get_prop(env, obj, name, &v, &t)) return false;
  if (t != napi_boolean) return wb_fail(env, name, "expected a boolean, got %s", type_name(t));
  napi_get_value_bool(env, v, out);
  return true;
}

bool wb_get_double_opt(napi_env env, napi_value obj, const char *name, double fallback,
                       double *out) {
  napi_value v;
  napi_valuetype t;
  if (!get_prop(env, obj, name, &v, &t)) return false;
  if (t == napi_undefined || t == napi_null) {
    *out = fallback;
    return true;
  }
  if (t != napi_number) return wb_fail(env, name, "expected a number, got %s", type_name(t));
  napi_get_value_double(env, v, out);
  if (!isfinite(*out)) return wb_fail(env, name, "expected a finite number, got %g", *out);
  return true;
}

bool wb_get_int_array(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max,
                      int64_t *out, size_t max_len, size_t *len) {
  napi_value v;
  napi_valuetype t;
  if (!get_prop(env, obj, name, &v, &t)) return false;
  bool is_array = false;
  napi_is_array(env, v, &is_array);
  if (!is_array) return wb_fail(env, name, "expected an array of integers, got %s", type_name(t));
  uint32_t n = 0;
  napi_get_array_length(env, v, &n);
  if (n > max_len) {
    return wb_fail(env, name, "expected at most %zu entries, got %u", max_len, n);
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_valuetype et;
    char elem_name[96];
    snprintf(elem_name, sizeof elem_name, "%s[%u]", name, i);
    if (napi_get_element(env, v, i, &e) != napi_ok) {
      return wb_fail(env, elem_name, "expected a readable element, got a throwing getter");
    }
    napi_typeof(env, e, &et);
    if (!to_int(env, elem_name, e, et, min, max, &out[i])) return false;
  }
  *len = n;
  return true;
}

bool wb_mul(napi_env env, const char *what, uint64_t a, uint64_t b, uint64_t *out) {
  if (a != 0 && b > UINT64_MAX / a) {
    return wb_fail(env, what, "expected a size that fits in 64 bits, got %llu * %llu",
                   (unsigned long long)a, (unsigned long long)b);
  }
  *out = a * b;
  return true;
}

bool wb_check_region(napi_env env, const wb_heap *heap, const char *name, int64_t offset,
                     uint64_t count, wb_region *region) {
  if (offset < 0 || (offset & 3) != 0) {
    return wb_fail(env, name, "expected a non-negative 4-byte-aligned byte offset, got %lld",
                   (long long)offset);
  }
  uint64_t bytes = 0;
  if (!wb_mul(env, name, count, 4, &bytes)) return false;
  uint64_t off = (uint64_t)offset;
  if (off > heap->byte_length || bytes > heap->byte_length - off) {
    return wb_fail(env, name,
                   "expected %llu bytes (%llu float32/int32) at offset %llu to lie within the heap "
                   "(byteLength %llu), got end %llu",
                   (unsigned long long)bytes, (unsigned long long)count, (unsigned long long)off,
                   (unsigned long long)heap->byte_length, (unsigned long long)(off + bytes));
  }
  region->name = name;
  region->offset = off;
  region->bytes = bytes;
  return true;
}

bool wb_check_disjoint(napi_env env, const wb_region *out, const wb_region *in) {
  if (out->bytes == 0 || in->bytes == 0) return true;
  bool overlap = out->offset < in->offset + in->bytes && in->offset < out->offset + out->bytes;
  if (overlap) {
    return wb_fail(env, out->name,
                   "expected an output region disjoint from %s [%llu, %llu), got [%llu, %llu)",
                   in->name, (unsigned long long)in->offset,
                   (unsigned long long)(in->offset + in->bytes), (unsigned long long)out->offset,
                   (unsigned long long)(out->offset + out->bytes));
  }
  return true;
}
