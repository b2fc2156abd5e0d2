/* dataset.c - allocation, release and subsets of in-memory datasets. */
#include "dataset.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

size_t dataset_image_bytes(const struct dataset *d)
{
    return shape_numel(d->shape);
}

void dataset_alloc(struct dataset *d, size_t n, struct shape s, size_t classes)
{
    EG_ASSERT(shape_numel(s) > 0 && classes > 0);
    *d = (struct dataset){.n = n, .shape = s, .classes = classes};
    d->pixels = eg_xcalloc(n, shape_numel(s));
    d->labels = eg_xcalloc(n, sizeof *d->labels);
    d->clean_labels = eg_xcalloc(n, sizeof *d->clean_labels);
}

void dataset_deinit(struct dataset *d)
{
    if (d == NULL) return;
    free(d->pixels);
    free(d->labels);
    free(d->clean_labels);
    if (d->class_names != NULL) {
        for (size_t k = 0; k < d->classes; k++) free(d->class_names[k]);
        free(d->class_names);
    }
    *d = (struct dataset){0};
}

void dataset_subset(const struct dataset *d, const size_t *idx, size_t m, struct dataset *out)
{
    struct dataset s;
    dataset_alloc(&s, m, d->shape, d->classes);
    size_t bytes = dataset_image_bytes(d);
    for (size_t i = 0; i < m; i++) {
        EG_ASSERT(idx[i] < d->n);
        memcpy(s.pixels + i * bytes, d->pixels + idx[i] * bytes, bytes);
        s.labels[i] = d->labels[idx[i]];
        s.clean_labels[i] = d->clean_labels[idx[i]];
    }
    if (d->class_names != NULL) {
        s.class_names = eg_xcalloc(d->classes, sizeof *s.class_names);
        for (size_t k = 0; k < d->classes; k++) s.class_names[k] = eg_xstrdup(d->class_names[k]);
    }
    *out = s;
}

void dataset_class_counts(const struct dataset *d, size_t *counts)
{
    memset(counts, 0, d->classes * sizeof *counts);
    for (size_t i = 0; i < d->n; i++) {
        EG_ASSERT(d->labels[i] >= 0 && (size_t)d->labels[i] < d->classes);
        counts[d->labels[i]]++;
    }
}
