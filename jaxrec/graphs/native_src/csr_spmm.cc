// CSR sparse x dense product for XLA on CPU: out = A @ x.
//
// Registered with XLA's FFI by jaxrec/graphs/native.py, which compiles this
// file on first use. Why a kernel of our own: XLA's CPU BCSR product gathers
// one row of x per edge without vectorising over the feature dimension or
// prefetching, and one LightGCN layer is nothing but this product.
//
// Inputs: x [N, d] float32 (JaxrecCsrMatmul) or bfloat16
// (JaxrecCsrMatmulBf16), weights [E] float32, columns [E] int32 and
// row_pointers [R + 1] int32 (CSR of A, rows R, columns N). Output [R, d]
// float32: bfloat16 rows are widened to float32 before the multiply-add, so
// only the gathered values are rounded and the sums stay float32. Why the
// bfloat16 form: beyond the cache the gathers x[col[j]] are the traffic, and
// half-width rows halve it.
// Rows are cut into chunks of equal (edges + rows), so skewed degrees (a
// degree-ordered graph puts the heaviest rows first) stay balanced, and the
// chunks run on XLA's own intra-op thread pool (the calling thread takes
// chunks too); each chunk owns whole output rows, so there are no races.
// Why XLA's pool: a second pool (OpenMP, before) competed with XLA's threads
// for the cores around every call; with XLA's pool a LightGCN step on the
// 1e7-edge synthetic graph went from 0.575 to 0.515 s (2-core CPU).
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Rows of x are gathered this many edges ahead of their use: random rows of
// a table beyond L2 cost a cache miss each, and the prefetches overlap them.
constexpr int64_t kPrefetchEdges = 8;

// One element of x widened to float32: a no-op for float32, and for
// bfloat16 (stored as its 16 bits) the bits moved to the top of a float32.
inline float Widen(float v) { return v; }
inline float Widen(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof(f));
  return f;
}

template <int D, typename T>
void RowsFixedWidth(const T* x, const float* w, const int32_t* col,
                    const int32_t* ptr, int64_t r0, int64_t r1, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t lo = ptr[r], hi = ptr[r + 1];
    float acc[D];
    for (int k = 0; k < D; ++k) acc[k] = 0.f;
    for (int64_t j = lo; j < hi; ++j) {
      if (j + kPrefetchEdges < hi) {
        const char* p = reinterpret_cast<const char*>(
            x + static_cast<int64_t>(col[j + kPrefetchEdges]) * D);
        for (int b = 0; b < D * static_cast<int>(sizeof(T)); b += 64) {
          __builtin_prefetch(p + b, 0, 3);
        }
      }
      const T* xr = x + static_cast<int64_t>(col[j]) * D;
      const float wj = w[j];
#pragma omp simd
      for (int k = 0; k < D; ++k) acc[k] += wj * Widen(xr[k]);
    }
    float* o = out + r * D;
    for (int k = 0; k < D; ++k) o[k] = acc[k];
  }
}

template <typename T>
void RowsAnyWidth(const T* x, const float* w, const int32_t* col,
                  const int32_t* ptr, int64_t r0, int64_t r1, int64_t d,
                  float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + r * d;
    for (int64_t k = 0; k < d; ++k) o[k] = 0.f;
    for (int64_t j = ptr[r]; j < ptr[r + 1]; ++j) {
      const T* xr = x + static_cast<int64_t>(col[j]) * d;
      const float wj = w[j];
#pragma omp simd
      for (int64_t k = 0; k < d; ++k) o[k] += wj * Widen(xr[k]);
    }
  }
}

// First row of chunk `t` of T: rows balanced by edges + rows.
int64_t SplitRow(const int32_t* ptr, int64_t rows, int64_t t, int64_t T) {
  if (t <= 0) return 0;
  if (t >= T) return rows;
  const int64_t total = static_cast<int64_t>(ptr[rows]) + rows;
  const int64_t target = total * t / T;
  int64_t lo = 0, hi = rows;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (static_cast<int64_t>(ptr[mid]) + mid < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

template <ffi::DataType XType, typename Elem>
ffi::Error CsrMatmulImpl(ffi::Buffer<XType> x, ffi::Buffer<ffi::F32> weights,
                         ffi::Buffer<ffi::S32> columns,
                         ffi::Buffer<ffi::S32> row_pointers,
                         ffi::ResultBuffer<ffi::F32> out,
                         ffi::ThreadPool pool) {
  const auto dims = x.dimensions();
  if (dims.size() != 2) {
    return ffi::Error::InvalidArgument("jaxrec_csr_matmul: x must be [N, d]");
  }
  const int64_t d = dims[1];
  const int64_t rows = row_pointers.element_count() - 1;
  const auto out_dims = out->dimensions();
  if (rows < 0 || out_dims.size() != 2 || out_dims[0] != rows ||
      out_dims[1] != d) {
    return ffi::Error::InvalidArgument(
        "jaxrec_csr_matmul: output must be [len(row_pointers) - 1, d]");
  }
  if (weights.element_count() != columns.element_count()) {
    return ffi::Error::InvalidArgument(
        "jaxrec_csr_matmul: weights and columns must have one entry per edge");
  }
  const int32_t* ptr = row_pointers.typed_data();
  const Elem* xp = reinterpret_cast<const Elem*>(x.typed_data());
  const float* wp = weights.typed_data();
  const int32_t* cp = columns.typed_data();
  float* op = out->typed_data();
  if (rows == 0) return ffi::Error::Success();
  const int64_t work = (static_cast<int64_t>(ptr[rows]) + rows) * d;
  auto run = [=](int64_t r0, int64_t r1) {
    if (d == 64) {
      RowsFixedWidth<64, Elem>(xp, wp, cp, ptr, r0, r1, op);
    } else if (d == 32) {
      RowsFixedWidth<32, Elem>(xp, wp, cp, ptr, r0, r1, op);
    } else {
      RowsAnyWidth(xp, wp, cp, ptr, r0, r1, d, op);
    }
  };
  const int64_t pool_threads = pool.num_threads();
  // Below ~64k multiply-adds a second thread costs more than it saves.
  if (work < (1 << 16) || pool_threads <= 1) {
    run(0, rows);
    return ffi::Error::Success();
  }
  // Workers claim chunks until none is left. A task the pool starts late
  // finds none and touches nothing but `shared`, which it keeps alive; the
  // caller never waits for a chunk nobody has claimed, so a busy pool cannot
  // deadlock it.
  struct Shared {
    std::atomic<int64_t> next{0}, done{0};
  };
  auto shared = std::make_shared<Shared>();
  const int64_t chunks = 4 * pool_threads;
  auto drain = [=]() {
    for (int64_t c; (c = shared->next.fetch_add(1)) < chunks;) {
      run(SplitRow(ptr, rows, c, chunks), SplitRow(ptr, rows, c + 1, chunks));
      shared->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t t = 1; t < pool_threads; ++t) {
    pool.Schedule([drain] { drain(); });
  }
  drain();
  while (shared->done.load(std::memory_order_acquire) < chunks) {
    std::this_thread::yield();
  }
  return ffi::Error::Success();
}

}  // namespace

constexpr auto CsrMatmulF32 = CsrMatmulImpl<ffi::F32, float>;
constexpr auto CsrMatmulBf16 = CsrMatmulImpl<ffi::BF16, uint16_t>;

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrecCsrMatmul, CsrMatmulF32,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // weights
                                  .Arg<ffi::Buffer<ffi::S32>>()  // columns
                                  .Arg<ffi::Buffer<ffi::S32>>()  // row_pointers
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ctx<ffi::ThreadPool>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrecCsrMatmulBf16, CsrMatmulBf16,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::BF16>>()  // x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // weights
                                  .Arg<ffi::Buffer<ffi::S32>>()  // columns
                                  .Arg<ffi::Buffer<ffi::S32>>()  // row_pointers
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ctx<ffi::ThreadPool>());
