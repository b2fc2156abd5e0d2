/* batch.h - mini-batches: shuffled epochs over a list of image indices, assembled into
 * normalised float NCHW tensors with augmentation. Deterministic for a seed: the batcher owns its
 * random generator (shuffles and augmentation draws), so other consumers of randomness do not
 * shift the data stream. The same object serves as the cycled iterator over the meta set (a
 * new, reshuffled epoch starts whenever the current one is used up). */
#ifndef EG_BATCH_H
#define EG_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "augment.h"
#include "core/rng.h"

struct dataset;

struct batcher {
    const struct dataset *d; // not owned; must outlive the batcher
    size_t *order;           // (n) owned: this epoch's order of the indices
    size_t *idx;             // (n) owned: the index list the batcher draws from
    size_t n, pos;           // indices in the list; next position in this epoch
    size_t epoch;            // epochs started so far (1 after the first batch)
    bool shuffle;
    struct augment aug;
    struct rng rng;
};

// Draws from idx[0..n) of dataset d (idx NULL: images 0..n-1, n <= d->n). shuffle: a fresh random
// order every epoch; otherwise the index order. aug: applied to every image (augment_none() for
// none). n > 0 (EG_ASSERT). The first batcher_next call starts epoch 1.
void batcher_init(struct batcher *b, const struct dataset *d, const size_t *idx, size_t n,
                  bool shuffle, const struct augment *aug, uint64_t seed);
void batcher_deinit(struct batcher *b);

// x: (bs, c, h, w) floats NCHW and y: (bs) labels written with the next images of the current
// epoch; when the epoch is used up, a new one starts first. Returns the number of images written:
// bs, or fewer for the last batch of an epoch (as PyTorch's DataLoader with drop_last=False).
size_t batcher_next(struct batcher *b, size_t bs, float *x, int32_t *y);

// Batches per epoch for batch size bs (the last one possibly short).
size_t batcher_batches_per_epoch(const struct batcher *b, size_t bs);

struct ckpt_list;
// Adds the batcher's resumable state to a checkpoint list (io/checkpoint.h): <prefix>order (this
// epoch's order), <prefix>pos, <prefix>epoch and <prefix>rng. The sections point into b, so
// loading the list continues the data stream exactly where it was saved. A loaded order that
// names an image outside the dataset, or a position past the epoch, is refused.
void batcher_sections(struct batcher *b, const char *prefix, struct ckpt_list *l);

#endif // EG_BATCH_H
