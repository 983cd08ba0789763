// Linear layers on cuBLAS. Row-major [rows, cols] data is column-major
// [cols, rows] to cuBLAS, so every product is computed transposed:
//   Y = X W^T      ->  Y^T  (out x N)  = W^T-op(W)    * X^T
//   dX = dY W      ->  dX^T (in x N)   = W^T          * dY^T
//   dW = dY^T X    ->  dW^T (in x out) = X^T          * dY
// FP32 compute (CUBLAS_COMPUTE_32F); TF32 tensor cores only when enabled.
// Bias addition and the bias gradient are small kernels (the latter sums rows in
// order: deterministic).
#include <climits>
#include <string>

#include "cuda_common.cuh"

namespace st::cuda {
namespace {

// C (m x n, column-major) = op(A) * op(B).
void gemm(Context& c, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
          const float* a, int lda, const float* b, int ldb, float* out, int ldc, const char* op) {
  const float alpha = 1.0f, beta = 0.0f;
  const cublasComputeType_t compute = c.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  check_cublas(cublasGemmEx(c.cublas, ta, tb, m, n, k, &alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F,
                            ldb, &beta, out, CUDA_R_32F, ldc, compute, CUBLAS_GEMM_DEFAULT),
               op, "cublasGemmEx");
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t rows, int cols) {
  const int64_t total = rows * cols;
  ST_GRID_STRIDE(i, total) {
    y[i] += bias[i % cols];
  }
}

// db[o] = sum over rows of dy[row, o]; consecutive threads read consecutive o.
__global__ void column_sum_kernel(const float* dy, float* db, int64_t rows, int cols) {
  ST_GRID_STRIDE(o, static_cast<int64_t>(cols)) {
    float s = 0.0f;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * cols + o];
    db[o] = s;
  }
}

struct LinearShape {
  int n, in, out;
};

LinearShape linear_shape(const Tensor& x, const Tensor& w, const char* op) {
  require(
      x.dim(0) < INT_MAX && x.dim(1) < INT_MAX && w.dim(0) < INT_MAX, op,
      "dimensions too large for cuBLAS: x " + shape_str(x.shape()) + ", w " + shape_str(w.shape()));
  return {static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)), static_cast<int>(w.dim(0))};
}

void zero(Context& c, float* p, int64_t count, const char* op) {
  if (count > 0)
    check(cudaMemsetAsync(p, 0, sizeof(float) * count, c.stream), op, "cudaMemsetAsync");
}

}  // namespace

void linear_forward(Context& c, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const char* op = "cuda linear_forward";
  const LinearShape s = linear_shape(x, w, op);
  const float* xp = f32_in(x);
  const float* wp = f32_in(w);
  const float* bp = nullptr;
  if (bias) {
    bp = f32_in(*bias);
  }
  float* yp = f32_out(y);
  if (s.n == 0 || s.out == 0) return;
  if (s.in == 0)
    zero(c, yp, y.numel(), op);
  else
    gemm(c, CUBLAS_OP_T, CUBLAS_OP_N, s.out, s.n, s.in, wp, s.in, xp, s.in, yp, s.out, op);
  if (bp) {
    add_bias_kernel<<<grid_for(y.numel()), kBlock, 0, c.stream>>>(yp, bp, s.n, s.out);
    check_launch(op, c.stream);
  }
}

void linear_backward(Context& c, const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx,
                     Tensor& dw, Tensor* db) {
  const char* op = "cuda linear_backward";
  const LinearShape s = linear_shape(x, w, op);
  const float* xp = f32_in(x);
  const float* wp = f32_in(w);
  const float* dyp = f32_in(dy);
  float* dwp = f32_out(dw);
  if (dx) {
    float* dxp = f32_out(*dx);
    if (s.out == 0)
      zero(c, dxp, dx->numel(), op);
    else if (s.n > 0 && s.in > 0)
      gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, s.in, s.n, s.out, wp, s.in, dyp, s.out, dxp, s.in, op);
  }
  if (s.n == 0)
    zero(c, dwp, dw.numel(), op);
  else if (s.in > 0 && s.out > 0)
    gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, s.in, s.out, s.n, xp, s.in, dyp, s.out, dwp, s.in, op);
  if (db) {
    float* dbp = f32_out(*db);
    if (s.out > 0) {
      column_sum_kernel<<<grid_for(s.out), kBlock, 0, c.stream>>>(dyp, dbp, s.n, s.out);
      check_launch(op, c.stream);
    }
  }
}

}  // namespace st::cuda
