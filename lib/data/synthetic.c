/* synthetic.c - a generated dataset for tests and smoke runs, needing no files.
 *
 * Class k has a prototype image P_k with every pixel drawn from U{0..255}. Sample i has label
 * i % classes and pixels round(P_k + e), e ~ N(0, SYNTH_NOISE_STD^2) independently per pixel,
 * clipped to [0, 255]. With std 40 a single pixel is a weak cue (two prototypes' pixels differ by
 * 85 grey levels on average, against noise of 57 between two samples), so a model must combine
 * many pixels and needs some training; over a whole image nearest-prototype is nearly perfect,
 * so the set is learnable, and a run that does not learn it is broken.
 *
 * Everything comes from one struct rng seeded with `seed`: the prototypes first (class 0 first,
 * NCHW order), then the samples in order, so the same arguments give the same bytes (on one
 * libm: the normals go through log, sin and cos in double). */
#include "dataset.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/rng.h"

// Per-pixel noise, in grey levels.
#define SYNTH_NOISE_STD 40.0

// See dataset.h. *out is overwritten (not freed first); the caller releases it with
// dataset_deinit. Requires classes in [1, INT32_MAX] and a non-empty shape (EG_ASSERT).
void synthetic_make(struct dataset *out, size_t n, struct shape s, size_t classes, uint64_t seed)
{
    EG_ASSERT(classes >= 1 && classes <= INT32_MAX && shape_numel(s) > 0);
    const size_t D = shape_numel(s);
    struct rng r;
    rng_seed(&r, seed);

    struct dataset d;
    dataset_alloc(&d, n, s, classes);

    uint8_t *proto = eg_xmalloc_array(classes, D);
    for (size_t j = 0; j < classes * D; j++)
        proto[j] = (uint8_t)rng_below(&r, 256);

    for (size_t i = 0; i < n; i++) {
        size_t k = i % classes;
        const uint8_t *p = proto + k * D;
        uint8_t *x = d.pixels + i * D;
        for (size_t j = 0; j < D; j++) {
            double v = floor((double)p[j] + SYNTH_NOISE_STD * rng_gaussian(&r) + 0.5);
            x[j] = (uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
        }
        d.labels[i] = d.clean_labels[i] = (int32_t)k;
    }
    free(proto);
    *out = d;
}
