// Convolution as implicit GEMM: the im2col matrix is never stored; each GEMM tile
// gathers its inputs straight from the NCHW tensors into shared memory.
//
//   forward       Y[o, (n,oh,ow)]  = sum_(c,r,s)    W[o, (c,r,s)] * X(n, c, oh*sh-ph+r, ow*sw-pw+s)
//   backward-data dX[c, (n,h,w)]   = sum_(o,r,s)    W[o, c, r, s] * dY(n, o, (h+ph-r)/sh,
//   (w+pw-s)/sw) backward-wt   dW[o, (c,r,s)]   = sum_(n,oh,ow)  dY[n, o, oh, ow] * X(n, c,
//   oh*sh-ph+r, ow*sw-pw+s)
//
// Two GEMM kernels share the tile loaders: an exact FP32 one (FMA on CUDA cores)
// and a TF32 tensor-core one (WMMA, sm_80+). Backward-weight has a small output
// and a long reduction, so K is split across blocks; the partial results are
// summed in a fixed order by a second kernel (no atomics: deterministic).
#include <mma.h>

#include <climits>
#include <string>

#include "cuda_common.cuh"

namespace st::cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16;  // block tile: BM x BN outputs, BK-deep slices of K
constexpr int kFp32Threads = 256;         // 16 x 16 threads, 4 x 4 outputs each
constexpr int kTf32Threads = 128;         // 2 x 2 warps, 32 x 32 outputs (2 x 2 fragments) each

struct ConvShape {
  int n, c, h, w;  // input
  int o, kh, kw;   // filters
  int sh, sw, ph, pw;
  int oh, ow;  // output
};

// Each problem maps the GEMM C[M x N] = A[M x K] * B[K x N] onto the tensors.
// kALoadAlongK / kBLoadAlongCol: which tile index consecutive threads walk when
// loading, chosen so that they read consecutive addresses.
struct ConvForward {
  static constexpr bool kALoadAlongK = true;
  static constexpr bool kBLoadAlongCol = true;
  ConvShape s;
  const float* x;
  const float* w;
  const float* bias;  // null when the conv has none
  bool relu;          // y = relu(conv + bias), as the CPU's relu: NaN -> 0
  float* y;
  int M, N, K;  // M = O, N = n*oh*ow, K = c*kh*kw

  __host__ __device__ float a(int m, int k) const { return w[static_cast<int64_t>(m) * K + k]; }
  __host__ __device__ float b(int k, int col) const {
    const int khw = s.kh * s.kw, ohw = s.oh * s.ow;
    const int c = k / khw, rs = k - c * khw, r = rs / s.kw, q = rs - r * s.kw;
    const int n = col / ohw, pix = col - n * ohw, oh = pix / s.ow, ow = pix - oh * s.ow;
    const int ih = oh * s.sh - s.ph + r, iw = ow * s.sw - s.pw + q;
    if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) return 0.0f;
    return x[((static_cast<int64_t>(n) * s.c + c) * s.h + ih) * s.w + iw];
  }
  __host__ __device__ void store(int m, int col, float v) const {
    const int ohw = s.oh * s.ow, n = col / ohw, pix = col - n * ohw;
    const float r = bias ? v + bias[m] : v;
    y[(static_cast<int64_t>(n) * s.o + m) * ohw + pix] = relu ? (r > 0.0f ? r : 0.0f) : r;
  }
};

struct ConvBackwardData {
  static constexpr bool kALoadAlongK = true;
  static constexpr bool kBLoadAlongCol = true;
  ConvShape s;
  const float* w;
  const float* dy;
  float* dx;
  int M, N, K;  // M = c, N = n*h*w, K = o*kh*kw

  __host__ __device__ float a(int m, int k) const {
    const int khw = s.kh * s.kw, o = k / khw, rs = k - o * khw;
    return w[(static_cast<int64_t>(o) * s.c + m) * khw + rs];
  }
  __host__ __device__ float b(int k, int col) const {
    const int khw = s.kh * s.kw, hw = s.h * s.w;
    const int o = k / khw, rs = k - o * khw, r = rs / s.kw, q = rs - r * s.kw;
    const int n = col / hw, pix = col - n * hw, ih = pix / s.w, iw = pix - ih * s.w;
    // Output (oh, ow) reads input (oh*sh - ph + r, ow*sw - pw + q): invert for (ih, iw).
    const int th = ih + s.ph - r, tw = iw + s.pw - q;
    if (th < 0 || tw < 0 || th % s.sh != 0 || tw % s.sw != 0) return 0.0f;
    const int oh = th / s.sh, ow = tw / s.sw;
    if (oh >= s.oh || ow >= s.ow) return 0.0f;
    return dy[((static_cast<int64_t>(n) * s.o + o) * s.oh + oh) * s.ow + ow];
  }
  __host__ __device__ void store(int m, int col, float v) const {
    const int hw = s.h * s.w, n = col / hw, pix = col - n * hw;
    dx[(static_cast<int64_t>(n) * s.c + m) * hw + pix] = v;
  }
};

struct ConvBackwardWeight {
  static constexpr bool kALoadAlongK = true;
  static constexpr bool kBLoadAlongCol = false;  // consecutive k = consecutive output pixels
  ConvShape s;
  const float* x;
  const float* dy;
  float* dw;
  int M, N, K;  // M = o, N = c*kh*kw, K = n*oh*ow

  __host__ __device__ float a(int m, int k) const {
    const int ohw = s.oh * s.ow, n = k / ohw, pix = k - n * ohw;
    return dy[(static_cast<int64_t>(n) * s.o + m) * ohw + pix];
  }
  __host__ __device__ float b(int k, int col) const {
    const int khw = s.kh * s.kw, ohw = s.oh * s.ow;
    const int n = k / ohw, pix = k - n * ohw, oh = pix / s.ow, ow = pix - oh * s.ow;
    const int c = col / khw, rs = col - c * khw, r = rs / s.kw, q = rs - r * s.kw;
    const int ih = oh * s.sh - s.ph + r, iw = ow * s.sw - s.pw + q;
    if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) return 0.0f;
    return x[((static_cast<int64_t>(n) * s.c + c) * s.h + ih) * s.w + iw];
  }
  __host__ __device__ void store(int m, int col, float v) const {
    dw[static_cast<int64_t>(m) * N + col] = v;
  }
};

// Loads the A tile (rows m0.., columns k0..) through put(mm, kk, value); zero outside.
template <class P, int kThreads, class Put>
__device__ __forceinline__ void load_a_tile(const P& p, int m0, int k0, int k_end, Put put) {
  for (int e = threadIdx.x; e < BM * BK; e += kThreads) {
    int mm, kk;
    if constexpr (P::kALoadAlongK) {
      kk = e % BK;
      mm = e / BK;
    } else {
      mm = e % BM;
      kk = e / BM;
    }
    const int m = m0 + mm, k = k0 + kk;
    put(mm, kk, (m < p.M && k < k_end) ? p.a(m, k) : 0.0f);
  }
}

// Loads the B tile (rows k0.., columns n0..) through put(kk, cc, value); zero outside.
template <class P, int kThreads, class Put>
__device__ __forceinline__ void load_b_tile(const P& p, int n0, int k0, int k_end, Put put) {
  for (int e = threadIdx.x; e < BK * BN; e += kThreads) {
    int kk, cc;
    if constexpr (P::kBLoadAlongCol) {
      cc = e % BN;
      kk = e / BN;
    } else {
      kk = e % BK;
      cc = e / BK;
    }
    const int k = k0 + kk, col = n0 + cc;
    put(kk, cc, (col < p.N && k < k_end) ? p.b(k, col) : 0.0f);
  }
}

// Writes one result: straight to the tensor, or to this split's partial buffer.
template <class P>
__device__ __forceinline__ void emit(const P& p, float* partial, int m, int col, float v) {
  if (partial)
    partial[(static_cast<int64_t>(blockIdx.z) * p.M + m) * p.N + col] = v;
  else
    p.store(m, col, v);
}

// Block (x, y, z) computes C tile (y, x) over K range [z*k_chunk, (z+1)*k_chunk).
template <class P>
__global__ void __launch_bounds__(kFp32Threads) gemm_fp32_kernel(P p, int k_chunk, float* partial) {
  __shared__ float As[BK][BM + 4];  // +4: fewer bank conflicts on the transposing store
  __shared__ float Bs[BK][BN + 4];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k_begin = blockIdx.z * k_chunk;
  const int k_end = min(p.K, k_begin + k_chunk);

  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int k0 = k_begin; k0 < k_end; k0 += BK) {
    load_a_tile<P, kFp32Threads>(p, m0, k0, k_end,
                                 [&](int mm, int kk, float v) { As[kk][mm] = v; });
    load_b_tile<P, kFp32Threads>(p, n0, k0, k_end,
                                 [&](int kk, int cc, float v) { Bs[kk][cc] = v; });
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = n0 + tx + 16 * j;
      if (m < p.M && col < p.N) emit(p, partial, m, col, acc[i][j]);
    }
  }
}

// The same tiling on tensor cores: inputs rounded to TF32, FP32 accumulation.
template <class P>
__global__ void __launch_bounds__(kTf32Threads) gemm_tf32_kernel(P p, int k_chunk, float* partial) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  // Leading dimensions: multiples of 8 floats keep every fragment 32-byte aligned.
  constexpr int LDA = BK + 8, LDB = BN + 8, LDC = BN + 8;
  __shared__ __align__(128) float As[BM * LDA];  // row-major [m][k]
  __shared__ __align__(128) float Bs[BK * LDB];  // row-major [k][n]
  __shared__ __align__(128) float Cs[BM * LDC];  // row-major [m][n]
  const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k_begin = blockIdx.z * k_chunk;
  const int k_end = min(p.K, k_begin + k_chunk);

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int k0 = k_begin; k0 < k_end; k0 += BK) {
    load_a_tile<P, kTf32Threads>(p, m0, k0, k_end, [&](int mm, int kk, float v) {
      As[mm * LDA + kk] = wmma::__float_to_tf32(v);
    });
    load_b_tile<P, kTf32Threads>(p, n0, k0, k_end, [&](int kk, int cc, float v) {
      Bs[kk * LDB + cc] = wmma::__float_to_tf32(v);
    });
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < BK; ks += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
        wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * LDA + ks, LDA);
#pragma unroll
      for (int j = 0; j < 2; ++j)
        wmma::load_matrix_sync(fb[j], Bs + ks * LDB + wn * 32 + j * 16, LDB);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, acc[i][j], LDC,
                              wmma::mem_row_major);
  __syncthreads();
  for (int e = threadIdx.x; e < BM * BN; e += kTf32Threads) {
    const int mm = e / BN, cc = e % BN;
    const int m = m0 + mm, col = n0 + cc;
    if (m < p.M && col < p.N) emit(p, partial, m, col, Cs[mm * LDC + cc]);
  }
#endif
}

// Sums the split-K partials in split order and stores the result.
template <class P>
__global__ void splitk_reduce_kernel(P p, const float* partial, int splits) {
  const int64_t total = static_cast<int64_t>(p.M) * p.N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int z = 0; z < splits; ++z) s += partial[z * total + i];
    p.store(static_cast<int>(i / p.N), static_cast<int>(i % p.N), s);
  }
}

struct SplitK {
  int splits = 1;
  int k_chunk = BK;
};

// Splits K when the output has too few tiles to fill the GPU (about two blocks
// per SM), keeping each split at least 8 K-slices long.
SplitK choose_split(int M, int N, int K, int sm_count) {
  SplitK sp;
  if (K <= 0) return sp;
  const int64_t tiles = static_cast<int64_t>((M + BM - 1) / BM) * ((N + BN - 1) / BN);
  const int64_t target = 2 * static_cast<int64_t>(sm_count);
  int64_t splits = tiles < target ? (target + tiles - 1) / tiles : 1;
  splits = std::min<int64_t>(splits, std::max(1, K / (8 * BK)));
  splits = std::clamp<int64_t>(splits, 1, 64);
  const int64_t chunk = (K + splits - 1) / splits;
  sp.k_chunk = static_cast<int>((chunk + BK - 1) / BK * BK);
  sp.splits = (K + sp.k_chunk - 1) / sp.k_chunk;
  return sp;
}

template <class P>
void run_gemm(Context& c, const P& p, const char* op) {
  if (p.M == 0 || p.N == 0) return;
  const SplitK sp = choose_split(p.M, p.N, p.K, c.sm_count);
  float* partial = nullptr;
  if (sp.splits > 1)
    partial = static_cast<float*>(c.workspace->get(
        sizeof(float) * static_cast<std::size_t>(sp.splits) * p.M * p.N, c.stream));
  const dim3 grid((p.N + BN - 1) / BN, (p.M + BM - 1) / BM, sp.splits);
  if (c.tf32)
    gemm_tf32_kernel<P><<<grid, kTf32Threads, 0, c.stream>>>(p, sp.k_chunk, partial);
  else
    gemm_fp32_kernel<P><<<grid, kFp32Threads, 0, c.stream>>>(p, sp.k_chunk, partial);
  check_launch(op, c.stream);
  if (partial) {
    splitk_reduce_kernel<P>
        <<<grid_for(static_cast<int64_t>(p.M) * p.N), kBlock, 0, c.stream>>>(p, partial, sp.splits);
    check_launch(op, c.stream);
  }
}

// The sizes (Backend checked the operands); all GEMM dims must fit in int.
ConvShape conv_shape(const Tensor& x, const Tensor& w, const ConvGeom& g, const char* op) {
  const int64_t oh = g.out_h(x.dim(2)), ow = g.out_w(x.dim(3));
  const int64_t big = std::max({x.dim(0) * oh * ow, x.dim(0) * x.dim(2) * x.dim(3),
                                w.dim(0) * g.kh * g.kw, x.dim(1) * g.kh * g.kw});
  require(big < INT_MAX, op,
          "tensors too large for 32-bit GEMM indexing: x " + shape_str(x.shape()) + ", w " +
              shape_str(w.shape()));
  ConvShape s;
  s.n = static_cast<int>(x.dim(0));
  s.c = static_cast<int>(x.dim(1));
  s.h = static_cast<int>(x.dim(2));
  s.w = static_cast<int>(x.dim(3));
  s.o = static_cast<int>(w.dim(0));
  s.kh = g.kh;
  s.kw = g.kw;
  s.sh = g.stride_h;
  s.sw = g.stride_w;
  s.ph = g.pad_h;
  s.pw = g.pad_w;
  s.oh = static_cast<int>(oh);
  s.ow = static_cast<int>(ow);
  return s;
}

}  // namespace

namespace {

void conv_forward(Context& c, const Tensor& x, const Tensor& w, const Tensor* bias,
                  const ConvGeom& g, Tensor& y, bool relu, const char* op) {
  const ConvShape s = conv_shape(x, w, g, op);
  ConvForward p;
  p.s = s;
  p.x = f32_in(x);
  p.w = f32_in(w);
  p.bias = nullptr;
  if (bias) {
    p.bias = f32_in(*bias);
  }
  p.relu = relu;
  p.y = f32_out(y);
  p.M = s.o;
  p.N = s.n * s.oh * s.ow;
  p.K = s.c * s.kh * s.kw;
  run_gemm(c, p, op);
}

}  // namespace

void conv2d_forward(Context& c, const Tensor& x, const Tensor& w, const Tensor* bias,
                    const ConvGeom& g, Tensor& y) {
  conv_forward(c, x, w, bias, g, y, false, "cuda conv2d_forward");
}

void conv2d_relu_forward(Context& c, const Tensor& x, const Tensor& w, const Tensor* bias,
                         const ConvGeom& g, Tensor& y) {
  conv_forward(c, x, w, bias, g, y, true, "cuda conv2d_relu_forward");
}

void conv2d_backward(Context& c, const Tensor& x, const Tensor& w, const Tensor& dy,
                     const ConvGeom& g, Tensor* dx, Tensor& dw, Tensor* db) {
  const char* op = "cuda conv2d_backward";
  const ConvShape s = conv_shape(x, w, g, op);
  const float* dy_p = f32_in(dy);
  if (dx) {
    ConvBackwardData p;
    p.s = s;
    p.w = f32_in(w);
    p.dy = dy_p;
    p.dx = f32_out(*dx);
    p.M = s.c;
    p.N = s.n * s.h * s.w;
    p.K = s.o * s.kh * s.kw;
    run_gemm(c, p, op);
  }
  ConvBackwardWeight p;
  p.s = s;
  p.x = f32_in(x);
  p.dy = dy_p;
  p.dw = f32_out(dw);
  p.M = s.o;
  p.N = s.c * s.kh * s.kw;
  p.K = s.n * s.oh * s.ow;
  run_gemm(c, p, op);
  if (db) {
    channel_sum(c, dy_p, s.n, s.o, static_cast<int64_t>(s.oh) * s.ow, f32_out(*db), op);
  }
}

}  // namespace st::cuda
