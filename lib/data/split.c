/* split.c - index splits: Meta-Weight-Net's class-balanced meta set (build_dataset in its
 * CIFAR loader: per class, shuffle that class's images and take the first meta_size/classes)
 * and plain ranges. Splits go by clean label, so they do not depend on applied noise.
 * Temporary buffers are freed before returning; the caller owns the index arrays. */
#include "split.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/dataset.h"

enum eg_status split_balanced(const struct dataset *d, size_t meta_size, struct rng *rng,
                              size_t *meta_idx, size_t *rest_idx, struct eg_error *err)
{
    const size_t N = d->classes;
    EG_ASSERT(N >= 1);
    if (meta_size % N != 0) {
        return eg_errorf(err, EG_ERR_ARG,
                         "meta set size %zu is not a multiple of the number of classes (%zu)",
                         meta_size, N);
    }
    if (meta_size > d->n) {
        return eg_errorf(err, EG_ERR_ARG, "meta set size %zu exceeds the dataset's %zu images",
                         meta_size, d->n);
    }
    const size_t per = meta_size / N;

    // Counting sort by clean label: class k's images are order[offsets[k] .. offsets[k+1]),
    // in increasing index order (the order MW-Net's list comprehension builds before shuffling).
    size_t *offsets = eg_xcalloc(N + 1, sizeof *offsets);
    for (size_t i = 0; i < d->n; i++) {
        int32_t y = d->clean_labels[i];
        EG_ASSERT(y >= 0 && (size_t)y < N);
        offsets[(size_t)y + 1]++;
    }
    // Every check comes before the first draw, so the rng is not advanced on failure either.
    for (size_t k = 0; k < N; k++) {
        if (offsets[k + 1] < per) {
            size_t have = offsets[k + 1];
            free(offsets);
            const char *name = d->class_names != NULL ? d->class_names[k] : NULL;
            return eg_errorf(err, EG_ERR_ARG,
                             "class %zu%s%s%s has %zu images, fewer than the %zu per class a "
                             "meta set of %zu over %zu classes needs",
                             k, name ? " ('" : "", name ? name : "", name ? "')" : "", have, per,
                             meta_size, N);
        }
    }
    for (size_t k = 0; k < N; k++)
        offsets[k + 1] += offsets[k];
    size_t *order = eg_xmalloc_array(d->n, sizeof *order);
    size_t *fill = eg_xmalloc_array(N, sizeof *fill);
    memcpy(fill, offsets, N * sizeof *fill);
    for (size_t i = 0; i < d->n; i++)
        order[fill[d->clean_labels[i]]++] = i;
    free(fill);

    bool *in_meta = eg_xcalloc(d->n, sizeof *in_meta);
    size_t m = 0;
    for (size_t k = 0; k < N; k++) {
        size_t *cls = order + offsets[k];
        rng_shuffle(rng, cls, offsets[k + 1] - offsets[k]);
        for (size_t t = 0; t < per; t++) {
            meta_idx[m++] = cls[t];
            in_meta[cls[t]] = true;
        }
    }
    size_t r = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (!in_meta[i]) rest_idx[r++] = i;
    }
    EG_ASSERT(m == meta_size && r == d->n - meta_size);
    free(in_meta);
    free(order);
    free(offsets);
    return EG_OK;
}

void split_range(size_t begin, size_t end, size_t *idx)
{
    EG_ASSERT(begin <= end);
    for (size_t i = begin; i < end; i++)
        idx[i - begin] = i;
}
