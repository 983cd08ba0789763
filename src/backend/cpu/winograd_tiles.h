// The four per-tile maps of Winograd F(2x2, 3x3), shared by both layouts
// (cpu_winograd.cpp, channel-innermost; cpu_winograd_thin.cpp, tile-innermost).
// Each layout loads one tile's values into these small arrays inside its own
// vector loop, over channels or over tile slots, and stores the results its
// own way; inlined, the arrays stay in registers.
#pragma once

namespace st::cpu::winograd {

// v = B^T d B for a 4x4 input tile, v[4 * i + j], with
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <typename T>
inline void input_transform(const T (&d)[4][4], T (&v)[16]) {
  T r[4][4];
  for (int j = 0; j < 4; ++j) {
    r[0][j] = d[0][j] - d[2][j];
    r[1][j] = d[1][j] + d[2][j];
    r[2][j] = d[2][j] - d[1][j];
    r[3][j] = d[1][j] - d[3][j];
  }
  for (int i = 0; i < 4; ++i) {
    v[4 * i + 0] = r[i][0] - r[i][2];
    v[4 * i + 1] = r[i][1] + r[i][2];
    v[4 * i + 2] = r[i][2] - r[i][1];
    v[4 * i + 3] = r[i][1] - r[i][3];
  }
}

// y = A^T m A, the 2x2 outputs of a tile's 16 products m[4 * i + j], with
// A^T = [1 1 1 0; 0 1 -1 -1].
template <typename T>
inline void output_transform(const T (&m)[16], T (&y)[2][2]) {
  T q[2][4];
  for (int j = 0; j < 4; ++j) {
    q[0][j] = m[j] + m[4 + j] + m[8 + j];
    q[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
  }
  for (int a = 0; a < 2; ++a) {
    y[a][0] = q[a][0] + q[a][1] + q[a][2];
    y[a][1] = q[a][1] - q[a][2] - q[a][3];
  }
}

// z = A g A^T for a 2x2 output-gradient tile: the adjoint of output_transform.
template <typename T>
inline void output_grad_transform(const T (&g)[2][2], T (&z)[16]) {
  // Rows of A g: each column (a, b) -> (a, a + b, a - b, -b), then the same across.
  const T a[4] = {g[0][0], g[0][0] + g[1][0], g[0][0] - g[1][0], -g[1][0]};
  const T b[4] = {g[0][1], g[0][1] + g[1][1], g[0][1] - g[1][1], -g[1][1]};
  for (int i = 0; i < 4; ++i) {
    z[4 * i + 0] = a[i];
    z[4 * i + 1] = a[i] + b[i];
    z[4 * i + 2] = a[i] - b[i];
    z[4 * i + 3] = -b[i];
  }
}

// t = B x B^T, the 4x4 input-gradient tile of 16 transformed-domain values
// x[4 * i + j]: the adjoint of input_transform.
template <typename T>
inline void input_grad_transform(const T (&x)[16], T (&t)[4][4]) {
  T r[4][4];  // B x: rows (x0, x1 - x2 + x3, x2 + x1 - x0, -x3)
  for (int j = 0; j < 4; ++j) {
    r[0][j] = x[j];
    r[1][j] = x[4 + j] - x[8 + j] + x[12 + j];
    r[2][j] = x[8 + j] + x[4 + j] - x[j];
    r[3][j] = -x[12 + j];
  }
  for (int i = 0; i < 4; ++i) {
    t[i][0] = r[i][0];
    t[i][1] = r[i][1] - r[i][2] + r[i][3];
    t[i][2] = r[i][2] + r[i][1] - r[i][0];
    t[i][3] = -r[i][3];
  }
}

}  // namespace st::cpu::winograd
