// Marks functions shared by the CPU code and the CUDA kernels.
#pragma once
#ifdef __CUDACC__
#define ST_HD __host__ __device__
#else
#define ST_HD
#endif
