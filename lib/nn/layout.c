/* layout.c - NCHW <-> CNHW copies, one H*W plane at a time. */
#include "layout.h"

#include <string.h>

void layout_nchw_to_cnhw(const float *src, float *dst, size_t N, struct shape s)
{
    size_t hw = s.h * s.w;
    for (size_t n = 0; n < N; n++) {
        for (size_t c = 0; c < s.c; c++) {
            memcpy(dst + (c * N + n) * hw, src + (n * s.c + c) * hw, hw * sizeof(float));
        }
    }
}

void layout_cnhw_to_nchw(const float *src, float *dst, size_t N, struct shape s)
{
    size_t hw = s.h * s.w;
    for (size_t n = 0; n < N; n++) {
        for (size_t c = 0; c < s.c; c++) {
            memcpy(dst + (n * s.c + c) * hw, src + (c * N + n) * hw, hw * sizeof(float));
        }
    }
}
