// Winograd F(2x2, 3x3) for thin layers (at most kThinMaxChannels channels on
// each side), in a tile-innermost layout read from and written to NCHW planes.
//
// The channel-innermost path (cpu_winograd.cpp) moves every plane through a
// transpose and packs both GEMM operands per call. Those passes scale with
// C + O per tile and the multiplies with C x O, so at 8 to 24 channels the
// passes cost more than the multiplies. Here each plane is instead split once
// into its four polyphase components (even or odd rows x even or odd
// columns). Tile (ty, tx) then sits at slot f = ty * s + tx, with s the tiles
// across plus one (one junk slot per tile row), and its 4x4 input pixel
// (i, j) is component (i % 2, j % 2) at slot f + (i / 2) * s + j / 2: every
// transform is an element-wise loop over contiguous slots, and the
// transformed tiles [16][C][slots] are already the GEMM's B operand in panel
// layout, which the GEMM reads in place instead of packing it; the small
// kernel matrices are packed once per call (gemm.h, sgemm_packed_a).
//
// Slots are processed in blocks that keep a block's transformed tiles in the
// L2 cache. The weight gradient sums over slots as row dot products kept in
// vector lanes (gemm.h, sdot_accumulate), which read both operands in place. The backward passes
// are the forward's adjoints, as in cpu_winograd.cpp. Junk slots compute outputs that are never
// stored, and carry a zero output gradient, so they add exactly nothing to dW or dx.
#include <algorithm>

#include "backend/cpu/cpu_runtime.h"
#include "backend/cpu/cpu_winograd.h"
#include "backend/cpu/winograd_tiles.h"

namespace st::cpu {
namespace {

constexpr int kPoints = 16;  // transformed tile size, the number of GEMMs
// Slots per block are a multiple of the widest register block's columns (32
// for avx512f), so the GEMM can read the transformed tiles in place.
constexpr int64_t kSlotAlign = 32;
// Floats of one block's transformed inputs and outputs together: 192 KiB,
// within a core's L2 on current x86 CPUs.
constexpr int64_t kBlockFloats = 48 * 1024;
// Weight-gradient chunks per thread (see thin_winograd_backward).
constexpr int64_t kChunksPerThread = 2;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

struct ThinPlan {
  int64_t s = 0;       // slots per tile row: tiles across + 1
  int64_t block = 0;   // slots per block, a multiple of kSlotAlign
  int64_t slots = 0;   // tile rows * s, rounded up to whole blocks
  int64_t in_len = 0;  // slots of one input component: the last block reads s + 1 past slots
};

ThinPlan plan_thin(const WindowDims& d) {
  ThinPlan t;
  t.s = ceil_div(d.ow, 2) + 1;
  const int64_t used = ceil_div(d.oh, 2) * t.s;
  const int64_t budget =
      std::max(kSlotAlign, kBlockFloats / (kPoints * (d.c + d.o)) / kSlotAlign * kSlotAlign);
  // As few blocks as the budget allows, or one fewer (up to 1.5 x the budget)
  // where that pads fewer slots: 72 slots at a budget of 64 make one block of
  // 96, not two of 64.
  int64_t blocks = ceil_div(used, budget);
  auto padded = [&](int64_t k) {
    return k * (ceil_div(ceil_div(used, k), kSlotAlign) * kSlotAlign);
  };
  if (blocks > 1 && padded(blocks - 1) < padded(blocks) &&
      ceil_div(used, blocks - 1) <= budget + budget / 2)
    --blocks;
  t.block = ceil_div(ceil_div(used, blocks), kSlotAlign) * kSlotAlign;
  t.slots = blocks * t.block;
  t.in_len = t.slots + t.s + 1;
  return t;
}

// dst[(2a + b) * cn + c][u * s + v] = src[c][2u + a - top][2v + b - left],
// zero outside the plane, for every slot u * s + v < len.
void split_components(const float* __restrict src, int64_t cn, int64_t h, int64_t w, int64_t top,
                      int64_t left, int64_t s, int64_t len, float* __restrict dst) {
  const int64_t rows = ceil_div(len, s);
  // The columns v whose pixels 2v - left and 2v + 1 - left both lie in [0, w);
  // the few at the edges are done one at a time.
  const int64_t v0 = std::min(s, (left + 1) / 2),
                v1 = std::clamp<int64_t>((w + left - 1) / 2, v0, s);
  for (int64_t c = 0; c < cn; ++c) {
    const float* plane = src + c * h * w;
    for (int a = 0; a < 2; ++a) {
      float* even = dst + ((2 * a) * cn + c) * len;
      float* odd = dst + ((2 * a + 1) * cn + c) * len;
      for (int64_t u = 0; u < rows; ++u) {
        float* e = even + u * s;
        float* o = odd + u * s;
        const int64_t n = std::min(s, len - u * s), r = 2 * u + a - top;
        if (r < 0 || r >= h) {
          std::fill(e, e + n, 0.0f);
          std::fill(o, o + n, 0.0f);
          continue;
        }
        const float* in = plane + r * w;
        auto pixel = [&](int64_t x) { return x >= 0 && x < w ? in[x] : 0.0f; };
        const int64_t lo = std::min(n, v0), hi = std::min(n, v1);
        for (int64_t v = 0; v < lo; ++v) e[v] = pixel(2 * v - left), o[v] = pixel(2 * v + 1 - left);
        const float* in2 = in + 2 * lo - left;  // lo >= v0: in bounds
        for (int64_t v = 0; v < hi - lo; ++v) {
          e[lo + v] = in2[2 * v];
          o[lo + v] = in2[2 * v + 1];
        }
        for (int64_t v = hi; v < n; ++v) e[v] = pixel(2 * v - left), o[v] = pixel(2 * v + 1 - left);
      }
    }
  }
}

// dst[c][y][x] = src[(2a + b) * cn + c][((y + top) / 2) * s + (x + left) / 2]
// with a = (y + top) % 2, b = (x + left) % 2: the inverse of split_components,
// dropping the border.
void merge_components(const float* __restrict src, int64_t cn, int64_t h, int64_t w, int64_t top,
                      int64_t left, int64_t s, int64_t len, float* __restrict dst) {
  for (int64_t c = 0; c < cn; ++c)
    for (int64_t y = 0; y < h; ++y) {
      const int64_t a = (y + top) % 2, row = ((y + top) / 2) * s;
      const float* even = src + ((2 * a) * cn + c) * len + row;
      const float* odd = src + ((2 * a + 1) * cn + c) * len + row;
      float* out = dst + (c * h + y) * w;
      int64_t x = 0;
      if (left % 2 == 1) out[x++] = odd[left / 2];
      // From here x + left is even: the pixels alternate even, odd component.
      const int64_t v0 = (x + left) / 2, pairs = (w - x) / 2;
      for (int64_t k = 0; k < pairs; ++k) {
        out[x + 2 * k] = even[v0 + k];
        out[x + 2 * k + 1] = odd[v0 + k];
      }
      if ((w - x) % 2 == 1) out[w - 1] = even[v0 + pairs];
    }
}

// The four components of channel c, from slot f0: (row parity, column parity).
struct Components {
  const float* __restrict p00;
  const float* __restrict p01;
  const float* __restrict p10;
  const float* __restrict p11;
  Components(const float* base, int64_t cn, int64_t c, int64_t len, int64_t f0)
      : p00(base + c * len + f0),
        p01(base + (cn + c) * len + f0),
        p10(base + (2 * cn + c) * len + f0),
        p11(base + (3 * cn + c) * len + f0) {}
};

// v[(p * cn + c) * block + j] = (B^T d B)[p] for the input tile d at slot
// f0 + j of every channel.
void transform_inputs(const float* comp, int64_t cn, const ThinPlan& t, int64_t f0,
                      float* __restrict v) {
  const int64_t s = t.s, ps = cn * t.block;
  for (int64_t c = 0; c < cn; ++c) {
    const Components x(comp, cn, c, t.in_len, f0);
    float* out = v + c * t.block;
#pragma omp simd
    for (int64_t j = 0; j < t.block; ++j) {
      const float d[4][4] = {{x.p00[j], x.p01[j], x.p00[j + 1], x.p01[j + 1]},
                             {x.p10[j], x.p11[j], x.p10[j + 1], x.p11[j + 1]},
                             {x.p00[j + s], x.p01[j + s], x.p00[j + s + 1], x.p01[j + s + 1]},
                             {x.p10[j + s], x.p11[j + s], x.p10[j + s + 1], x.p11[j + s + 1]}};
      float tile[16];
      winograd::input_transform(d, tile);
      for (int p = 0; p < 16; ++p) out[p * ps + j] = tile[p];
    }
  }
}

// q[(2a + b) * on + o][f0 + j] = (A^T m A)[a][b] + bias[o] for the products m
// of slot f0 + j, m[(p * on + o) * block + j].
void transform_outputs(const float* m, const float* bias, int64_t on, const ThinPlan& t, int64_t f0,
                       float* q) {
  const int64_t ps = on * t.block;
  for (int64_t o = 0; o < on; ++o) {
    const float* __restrict mo = m + o * t.block;
    float* __restrict q00 = q + o * t.slots + f0;
    float* __restrict q01 = q + (on + o) * t.slots + f0;
    float* __restrict q10 = q + (2 * on + o) * t.slots + f0;
    float* __restrict q11 = q + (3 * on + o) * t.slots + f0;
    const float b = bias[o];
#pragma omp simd
    for (int64_t j = 0; j < t.block; ++j) {
      float tile[16], y[2][2];
      for (int p = 0; p < 16; ++p) tile[p] = mo[p * ps + j];
      winograd::output_transform(tile, y);
      q00[j] = y[0][0] + b;
      q01[j] = y[0][1] + b;
      q10[j] = y[1][0] + b;
      q11[j] = y[1][1] + b;
    }
  }
}

// z[(p * on + o) * block + j] = (A g A^T)[p] for the 2x2 output-gradient tile
// g of slot f0 + j, read from the components g[(2a + b) * on + o][slots].
void transform_output_grads(const float* g, int64_t on, const ThinPlan& t, int64_t f0,
                            float* __restrict z) {
  const int64_t ps = on * t.block;
  for (int64_t o = 0; o < on; ++o) {
    const Components dy(g, on, o, t.slots, f0);
    float* out = z + o * t.block;
#pragma omp simd
    for (int64_t j = 0; j < t.block; ++j) {
      const float tile[2][2] = {{dy.p00[j], dy.p01[j]}, {dy.p10[j], dy.p11[j]}};
      float zt[16];
      winograd::output_grad_transform(tile, zt);
      for (int p = 0; p < 16; ++p) out[p * ps + j] = zt[p];
    }
  }
}

// Adds B x B^T, x[(p * cn + c) * block + j] the input-gradient points of slot
// f0 + j, onto the components of the padded input gradient, acc[(2a + b) *
// cn + c][in_len]: tile pixel (i, j') goes to component (i % 2, j' % 2) at
// slot f0 + j + (i / 2) * s + j' / 2. `tile` holds one channel's 16 pixel
// planes, so that the four overlapping additions run as separate loops.
void add_input_grads(const float* x, int64_t cn, const ThinPlan& t, int64_t f0,
                     float* __restrict tile, float* acc) {
  const int64_t ps = cn * t.block, bl = t.block;
  for (int64_t c = 0; c < cn; ++c) {
    const float* __restrict xc = x + c * t.block;
#pragma omp simd
    for (int64_t j = 0; j < bl; ++j) {
      float v[16], g[4][4];
      for (int p = 0; p < 16; ++p) v[p] = xc[p * ps + j];
      winograd::input_grad_transform(v, g);
      for (int i = 0; i < 4; ++i)
        for (int k = 0; k < 4; ++k) tile[(4 * i + k) * bl + j] = g[i][k];
    }
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 4; ++k) {
        const float* __restrict src = tile + (4 * i + k) * bl;
        float* __restrict dst =
            acc + ((2 * (i % 2) + k % 2) * cn + c) * t.in_len + f0 + (i / 2) * t.s + k / 2;
#pragma omp simd
        for (int64_t j = 0; j < bl; ++j) dst[j] += src[j];
      }
  }
}

// The 16 transformed kernel matrices U[p] [O, C] (or U[p]^T [C, O] when
// `transposed`) packed once per call for the GEMM's register panels, split
// across the calling team.
void pack_kernels(const float* u, const WindowDims& d, bool transposed, float* packed) {
  const int64_t rows = transposed ? d.c : d.o, depth = transposed ? d.o : d.c;
  const int64_t size = packed_a_size(rows, depth);
#pragma omp for schedule(static)
  for (int p = 0; p < kPoints; ++p)
    pack_small_a(transposed, rows, depth, u + p * d.o * d.c, d.c, packed + p * size);
}

}  // namespace

bool thin_winograd_applies(const WindowDims& d) {
  // Measured against the other paths (cpu_winograd.h says where).
  return winograd_geometry(d) && d.c >= kThinMinInputChannels &&
         std::max(d.c, d.o) <= kThinRuleMaxChannels && std::min(d.c, d.o) < kWinogradMinChannels &&
         d.oh * d.ow >= kThinMinPlane;
}

void thin_winograd_forward(const float* x, const float* w, const float* bias, const WindowDims& d,
                           bool relu, float* y) {
  const ThinPlan t = plan_thin(d);
  const int team = threads_for(d.n, d.o * d.c * 9 * d.oh * d.ow);
  float* u = scratch<float>(Scratch::Weights, kPoints * d.o * d.c);
  const int64_t packed_size = packed_a_size(d.o, d.c);
  float* packed = scratch<float>(Scratch::Packed, kPoints * packed_size);
#pragma omp parallel num_threads(team)
  {
    winograd_transform_kernels(w, d, u);  // ends with the for's barrier
    pack_kernels(u, d, false, packed);
    float* comp = scratch<float>(Scratch::Plane, 4 * d.c * t.in_len);
    float* v = scratch<float>(Scratch::Col, kPoints * d.c * t.block);
    float* m = scratch<float>(Scratch::Gather, kPoints * d.o * t.block);
    float* q = scratch<float>(Scratch::OutPlane, 4 * d.o * t.slots);
    float* b = scratch<float>(Scratch::Bias, d.o);
    for (int64_t o = 0; o < d.o; ++o) b[o] = bias ? bias[o] : 0.0f;
#pragma omp for schedule(dynamic, 1)
    for (int64_t n = 0; n < d.n; ++n) {
      split_components(x + n * d.c * d.h * d.w, d.c, d.h, d.w, d.g.pad_h, d.g.pad_w, t.s, t.in_len,
                       comp);
      for (int64_t f0 = 0; f0 < t.slots; f0 += t.block) {
        transform_inputs(comp, d.c, t, f0, v);
        // M[p] [O, block] = U[p] [O, C] * V[p] [C, block], V read in place.
        for (int p = 0; p < kPoints; ++p)
          sgemm_packed_a(d.o, t.block, d.c, packed + p * packed_size, v + p * d.c * t.block,
                         t.block, m + p * d.o * t.block, t.block);
        transform_outputs(m, b, d.o, t, f0, q);
      }
      float* yn = y + n * d.o * d.oh * d.ow;
      merge_components(q, d.o, d.oh, d.ow, 0, 0, t.s, t.slots, yn);
      if (relu) relu_in_place(yn, d.o * d.oh * d.ow);
    }
  }
}

void thin_winograd_backward(const float* x, const float* w, const float* dy, const WindowDims& d,
                            float* dx, float* dw, float* db) {
  const ThinPlan t = plan_thin(d);
  const int team = threads_for(d.n, d.o * d.c * 9 * d.oh * d.ow * (dx ? 2 : 1));
  const int64_t u_size = kPoints * d.o * d.c;
  // Fixed chunks of consecutive images, each summing its weight gradient (in
  // the transformed domain) into its own buffer; the buffers are added in
  // chunk order, so dw is bitwise reproducible for a given thread count.
  const int64_t chunks = team == 1 ? 1 : std::min<int64_t>(d.n, kChunksPerThread * team);
  float* acc = scratch<float>(Scratch::WeightGrad, chunks * u_size);
  float* u = dx ? scratch<float>(Scratch::Weights, u_size) : nullptr;
  const int64_t packed_size = packed_a_size(d.c, d.o);
  float* packed = dx ? scratch<float>(Scratch::Packed, kPoints * packed_size) : nullptr;
#pragma omp parallel num_threads(team)
  {
    if (dx) {
      winograd_transform_kernels(w, d, u);
      pack_kernels(u, d, true, packed);
    }
    float* comp = scratch<float>(Scratch::Plane, 4 * d.c * t.in_len);
    float* grad_comp = scratch<float>(Scratch::OutPlane, 4 * d.o * t.slots);
    float* v = scratch<float>(Scratch::Col, kPoints * d.c * t.block);
    float* z = scratch<float>(Scratch::Gather, kPoints * d.o * t.block);
    float* xg = dx ? scratch<float>(Scratch::ColGrad, kPoints * d.c * t.block) : nullptr;
    float* dx_comp = dx ? scratch<float>(Scratch::PlaneGrad, 4 * d.c * t.in_len) : nullptr;
    float* tile = dx ? scratch<float>(Scratch::Tile, kPoints * t.block) : nullptr;
    // This thread's chunk of the weight gradient in the dot products' lanes.
    const int lanes = dot_lanes();
    float* partial = scratch<float>(Scratch::Lanes, u_size * lanes);
#pragma omp for schedule(dynamic, 1)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      float* a = acc + chunk * u_size;
      const int64_t first = chunk * d.n / chunks, last = (chunk + 1) * d.n / chunks;
      std::fill(partial, partial + u_size * lanes, 0.0f);
      for (int64_t n = first; n < last; ++n) {
        split_components(x + n * d.c * d.h * d.w, d.c, d.h, d.w, d.g.pad_h, d.g.pad_w, t.s,
                         t.in_len, comp);
        split_components(dy + n * d.o * d.oh * d.ow, d.o, d.oh, d.ow, 0, 0, t.s, t.slots,
                         grad_comp);
        if (dx) std::fill(dx_comp, dx_comp + 4 * d.c * t.in_len, 0.0f);
        for (int64_t f0 = 0; f0 < t.slots; f0 += t.block) {
          transform_inputs(comp, d.c, t, f0, v);
          transform_output_grads(grad_comp, d.o, t, f0, z);
          for (int p = 0; p < kPoints; ++p) {
            const float* zp = z + p * d.o * t.block;
            // M[p] [O, C] += Z[p] [O, block] * V[p]^T [block, C], as row dot
            // products in lanes: both operands are read in place.
            sdot_accumulate(d.o, d.c, t.block, zp, t.block, v + p * d.c * t.block, t.block,
                            partial + p * d.o * d.c * lanes);
            // X[p] [C, block] = U[p]^T [C, O] * Z[p] [O, block], Z read in place.
            if (dx)
              sgemm_packed_a(d.c, t.block, d.o, packed + p * packed_size, zp, t.block,
                             xg + p * d.c * t.block, t.block);
          }
          if (dx) add_input_grads(xg, d.c, t, f0, tile, dx_comp);
        }
        if (dx)
          merge_components(dx_comp, d.c, d.h, d.w, d.g.pad_h, d.g.pad_w, t.s, t.in_len,
                           dx + n * d.c * d.h * d.w);
      }
      sum_lanes(partial, u_size, a);
    }
    winograd_untransform_weight_grads(acc, chunks, d, dw);
    if (db) conv_bias_grad(dy, d, db);
  }
}

}  // namespace st::cpu
