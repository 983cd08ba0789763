// Softmax cross-entropy and accuracy: one warp per row. The batch loss is summed
// per row, then over rows by one block in a fixed order (deterministic). Labels
// live on the device, so bad labels are flagged there (integer atomicMin, exact)
// and reported when the host reads the result back.
#include <climits>
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda_common.cuh"

namespace st::cuda {
namespace {

// Both kernels set bad_row to the first row whose label is outside [0, k); it
// starts as kNoBadRow (every byte 0x7f, so one memset initializes it).
constexpr int kNoBadRow = 0x7f7f7f7f;

struct LossResult {
  double loss_sum;
  int bad_row;
  int pad;
  unsigned long long correct;
};

__device__ __forceinline__ float warp_allmax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// The butterfly gives every lane the same association (up to commutation), hence
// the same bits.
__device__ __forceinline__ float warp_allsum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__global__ void softmax_xent_rows_kernel(const float* logits, const int32_t* labels, float* probs,
                                         double* row_loss, int64_t rows, int k,
                                         LossResult* result) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = first_warp(); row < rows; row += warp_count()) {
    const float* z = logits + row * k;
    float zmax = -INFINITY;
    for (int j = lane; j < k; j += 32) zmax = fmaxf(zmax, z[j]);
    zmax = warp_allmax(zmax);
    float sum = 0.0f;
    for (int j = lane; j < k; j += 32) sum += expf(z[j] - zmax);
    sum = warp_allsum(sum);
    const int label = labels[row];
    const bool valid = label >= 0 && label < k;
    // Read the label's logit before probs (which may alias logits) is written.
    const float z_label = valid ? z[label] : 0.0f;
    __syncwarp();
    for (int j = lane; j < k; j += 32) probs[row * k + j] = expf(z[j] - zmax) / sum;
    if (lane == 0) {
      row_loss[row] =
          valid ? static_cast<double>(zmax) + log(static_cast<double>(sum)) - z_label : 0.0;
      if (!valid) atomicMin(&result->bad_row, static_cast<int>(row));
    }
  }
}

__global__ void sum_rows_kernel(const double* row_loss, int64_t rows, LossResult* result) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) s += row_loss[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) result->loss_sum = s;
}

__global__ void softmax_xent_backward_kernel(const float* probs, const int32_t* labels,
                                             float* dlogits, int64_t rows, int k) {
  const float inv_n = static_cast<float>(1.0 / static_cast<double>(rows));
  const int64_t total = rows * k;
  ST_GRID_STRIDE(i, total) {
    const int64_t row = i / k;
    const int j = static_cast<int>(i - row * k);
    const float onehot = j == labels[row] ? 1.0f : 0.0f;
    dlogits[i] = (probs[i] - onehot) * inv_n;
  }
}

// argmax with the first maximum winning, as std::max_element.
__global__ void count_correct_kernel(const float* logits, const int32_t* labels, int64_t rows,
                                     int k, LossResult* result) {
  const int lane = threadIdx.x & 31;
  for (int64_t row = first_warp(); row < rows; row += warp_count()) {
    const float* z = logits + row * k;
    float best = 0.0f;
    int arg = -1;
    for (int j = lane; j < k; j += 32)
      if (arg < 0 || z[j] > best) {
        best = z[j];
        arg = j;
      }
    for (int o = 16; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(kFullMask, best, o);
      const int other_arg = __shfl_xor_sync(kFullMask, arg, o);
      const bool take =
          other_arg >= 0 && (arg < 0 || other > best || (other == best && other_arg < arg));
      if (take) {
        best = other;
        arg = other_arg;
      }
    }
    if (lane == 0) {
      const int label = labels[row];
      if (label < 0 || label >= k) atomicMin(&result->bad_row, static_cast<int>(row));
      if (arg == label) atomicAdd(&result->correct, 1ull);
    }
  }
}

struct LogitsShape {
  int64_t rows;
  int k;
};

LogitsShape logits_shape(const Tensor& logits, const Tensor& labels, const char* op,
                         const char* name) {
  require(logits.dim(1) >= 1 && logits.dim(1) < INT_MAX && logits.dim(0) < kNoBadRow, op,
          std::string(name) + " has unsupported shape " + shape_str(logits.shape()));
  return {logits.dim(0), static_cast<int>(logits.dim(1))};
}

// Copies the result to page-locked host memory and waits for it.
LossResult read_result(Context& c, const LossResult* device, const char* op) {
  check(
      cudaMemcpyAsync(c.host_scratch, device, sizeof(LossResult), cudaMemcpyDeviceToHost, c.stream),
      op, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(c.stream), op, "cudaStreamSynchronize");
  return *static_cast<const LossResult*>(c.host_scratch);
}

void throw_bad_label(const Tensor& labels, int row, int k, const char* op) {
  const Tensor host = labels.slice0(row, row + 1).to(Device::CPU);
  throw std::invalid_argument(
      std::string(op) + ": label " + std::to_string(host.data<int32_t>()[0]) + " at row " +
      std::to_string(row) + " is out of range [0, " + std::to_string(k) + ")");
}

LossResult* fresh_result(Context& c, void* at, const char* op) {
  auto* r = static_cast<LossResult*>(at);
  check(cudaMemsetAsync(r, 0, sizeof(LossResult), c.stream), op, "cudaMemsetAsync");
  check(cudaMemsetAsync(&r->bad_row, 0x7f, sizeof(int), c.stream), op, "cudaMemsetAsync");
  return r;
}

}  // namespace

double softmax_xent_forward(Context& c, const Tensor& logits, const Tensor& labels, Tensor& probs) {
  const char* op = "cuda softmax_xent_forward";
  const LogitsShape s = logits_shape(logits, labels, op, "logits");
  const float* zp = f32_in(logits);
  const int32_t* lp = i32_in(labels);
  float* pp = f32_out(probs);
  if (s.rows == 0) return 0.0;
  // Workspace: the result, then one double per row.
  char* ws =
      static_cast<char*>(c.workspace->get(sizeof(LossResult) + sizeof(double) * s.rows, c.stream));
  LossResult* result = fresh_result(c, ws, op);
  double* row_loss = reinterpret_cast<double*>(ws + sizeof(LossResult));
  softmax_xent_rows_kernel<<<warp_grid_for(s.rows), kBlock, 0, c.stream>>>(zp, lp, pp, row_loss,
                                                                           s.rows, s.k, result);
  check_launch(op, c.stream);
  sum_rows_kernel<<<1, kBlock, 0, c.stream>>>(row_loss, s.rows, result);
  check_launch(op, c.stream);
  const LossResult r = read_result(c, result, op);
  if (r.bad_row != kNoBadRow) throw_bad_label(labels, r.bad_row, s.k, op);
  return r.loss_sum / static_cast<double>(s.rows);
}

// Labels were validated by the forward of the same batch; a bad one here only
// loses its one-hot term (no host round trip in the backward).
void softmax_xent_backward(Context& c, const Tensor& probs, const Tensor& labels, Tensor& dlogits) {
  const char* op = "cuda softmax_xent_backward";
  const LogitsShape s = logits_shape(probs, labels, op, "probs");
  const float* pp = f32_in(probs);
  const int32_t* lp = i32_in(labels);
  float* dp = f32_out(dlogits);
  if (s.rows == 0) return;
  softmax_xent_backward_kernel<<<grid_for(s.rows * s.k), kBlock, 0, c.stream>>>(pp, lp, dp, s.rows,
                                                                                s.k);
  check_launch(op, c.stream);
}

int64_t count_correct(Context& c, const Tensor& logits, const Tensor& labels) {
  const char* op = "cuda count_correct";
  const LogitsShape s = logits_shape(logits, labels, op, "logits");
  const float* zp = f32_in(logits);
  const int32_t* lp = i32_in(labels);
  if (s.rows == 0) return 0;
  LossResult* result = fresh_result(c, c.workspace->get(sizeof(LossResult), c.stream), op);
  count_correct_kernel<<<warp_grid_for(s.rows), kBlock, 0, c.stream>>>(zp, lp, s.rows, s.k, result);
  check_launch(op, c.stream);
  const LossResult r = read_result(c, result, op);
  if (r.bad_row != kNoBadRow) throw_bad_label(labels, r.bad_row, s.k, op);
  return static_cast<int64_t>(r.correct);
}

}  // namespace st::cuda
