/* split.h - index splits of a dataset: the class-balanced clean meta set of the label-noise
 * experiment (Meta-Weight-Net's code: per class, a random meta_size/classes of its images) and
 * plain index ranges (the rotation experiment's train/validation ranges). */
#ifndef EG_SPLIT_H
#define EG_SPLIT_H

#include <stddef.h>

#include "core/status.h"

struct dataset;
struct rng;

// meta_idx: (meta_size) written with meta_size/classes random images of each class (by clean
// label), in class order then random order within a class; rest_idx: (n - meta_size) written
// with every other index in increasing order. meta_size must be a multiple of d->classes and
// every class must have at least meta_size/classes images, else EG_ERR_ARG with a message
// naming the class; outputs and rng untouched on failure.
enum eg_status split_balanced(const struct dataset *d, size_t meta_size, struct rng *rng,
                              size_t *meta_idx, size_t *rest_idx, struct eg_error *err);

// idx: (end - begin) written with begin, ..., end - 1. Requires begin <= end (EG_ASSERT).
void split_range(size_t begin, size_t end, size_t *idx);

#endif // EG_SPLIT_H
