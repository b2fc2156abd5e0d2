/* layout.h - conversions between the public NCHW layout and the networks' internal CNHW layout
 * (layer.h). Both directions copy; src and dst must not overlap. */
#ifndef EG_LAYOUT_H
#define EG_LAYOUT_H

#include <stddef.h>

#include "layer.h"

// src: (N, s.c, s.h, s.w) NCHW;  dst: (s.c, N, s.h, s.w) CNHW, written.
void layout_nchw_to_cnhw(const float *src, float *dst, size_t N, struct shape s);
// src: (s.c, N, s.h, s.w) CNHW;  dst: (N, s.c, s.h, s.w) NCHW, written.
void layout_cnhw_to_nchw(const float *src, float *dst, size_t N, struct shape s);

#endif // EG_LAYOUT_H
