#include "backend/cpu/denormals.h"

#include <omp.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace st {

static void set_ftz_daz_this_thread() {
#if defined(__x86_64__) || defined(__i386__)
  // Bit 15: flush to zero; bit 6: denormals are zero.
  _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
}

void flush_denormals_to_zero() {
  set_ftz_daz_this_thread();
  // OpenMP keeps its worker threads, so setting their control register once lasts.
#pragma omp parallel
  set_ftz_daz_this_thread();
}

}  // namespace st
