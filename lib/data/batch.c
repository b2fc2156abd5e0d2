/* batch.c - epochs over an index list, cut into mini-batches of augmented float images.
 * An epoch is one pass over the list: in index order, or in a fresh random permutation of it
 * (rng_shuffle of the list, drawn from the batcher's own generator) when shuffling. Epochs start
 * lazily, when batcher_next finds the current one used up, so the first call starts epoch 1.
 * Augmentation draws come from the same generator, after the epoch's shuffle. */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "dataset.h"
#include "io/checkpoint.h"

void batcher_init(struct batcher *b, const struct dataset *d, const size_t *idx, size_t n,
                  bool shuffle, const struct augment *aug, uint64_t seed)
{
    EG_ASSERT(b != NULL && d != NULL && aug != NULL);
    EG_ASSERT(n > 0);
    // Checked here rather than at the first batch, where augment_image would abort.
    EG_ASSERT(d->shape.c <= AUGMENT_MAX_CHANNELS);
    EG_ASSERT(aug->crop_pad < d->shape.h && aug->crop_pad < d->shape.w);

    size_t *list = eg_xmalloc_array(n, sizeof *list);
    if (idx == NULL) {
        EG_ASSERT(n <= d->n);
        for (size_t i = 0; i < n; i++)
            list[i] = i;
    } else {
        for (size_t i = 0; i < n; i++) {
            EG_ASSERT(idx[i] < d->n);
            list[i] = idx[i];
        }
    }
    *b = (struct batcher){
        .d = d,
        .order = eg_xmalloc_array(n, sizeof *b->order),
        .idx = list,
        .n = n,
        .pos = n, // used up: the first batcher_next starts epoch 1
        .epoch = 0,
        .shuffle = shuffle,
        .aug = *aug,
    };
    // Defined before the first epoch too, so a checkpoint of an unused batcher is deterministic.
    memcpy(b->order, list, n * sizeof *list);
    rng_seed(&b->rng, seed);
}

void batcher_deinit(struct batcher *b)
{
    if (b == NULL) return;
    free(b->order);
    free(b->idx);
    *b = (struct batcher){0};
}

// Starts the next epoch: the order is the index list, permuted when shuffling.
static void start_epoch(struct batcher *b)
{
    memcpy(b->order, b->idx, b->n * sizeof *b->order);
    if (b->shuffle) rng_shuffle(&b->rng, b->order, b->n);
    b->pos = 0;
    b->epoch++;
}

size_t batcher_next(struct batcher *b, size_t bs, float *x, int32_t *y)
{
    EG_ASSERT(bs > 0 && x != NULL && y != NULL);
    if (b->pos == b->n) start_epoch(b);

    const struct dataset *d = b->d;
    const size_t m = b->n - b->pos < bs ? b->n - b->pos : bs;
    const size_t numel = shape_numel(d->shape);
    for (size_t i = 0; i < m; i++) {
        size_t k = b->order[b->pos + i];
        augment_image(&b->aug, d->shape, d->pixels + k * numel, x + i * numel, &b->rng);
        y[i] = d->labels[k];
    }
    b->pos += m;
    return m;
}

size_t batcher_batches_per_epoch(const struct batcher *b, size_t bs)
{
    EG_ASSERT(bs > 0);
    return (b->n + bs - 1) / bs;
}

// A loaded order must index the dataset, a loaded position the order.
static bool order_valid(const void *data, const void *ctx, char *why, size_t cap)
{
    const struct batcher *b = ctx;
    for (size_t i = 0; i < b->n; i++) {
        size_t k;
        memcpy(&k, (const char *)data + i * sizeof k, sizeof k);
        if (k >= b->d->n) {
            snprintf(why, cap, "entry %zu is image %zu of a dataset of %zu", i, k, b->d->n);
            return false;
        }
    }
    return true;
}

static bool pos_valid(const void *data, const void *ctx, char *why, size_t cap)
{
    const struct batcher *b = ctx;
    size_t pos;
    memcpy(&pos, data, sizeof pos);
    if (pos <= b->n) return true;
    snprintf(why, cap, "position %zu in an epoch of %zu images", pos, b->n);
    return false;
}

void batcher_sections(struct batcher *b, const char *prefix, struct ckpt_list *l)
{
    EG_ASSERT(b != NULL && b->order != NULL);
    ckpt_add_checked(l, prefix, "order", b->order, b->n * sizeof *b->order, order_valid, b);
    ckpt_add_checked(l, prefix, "pos", &b->pos, sizeof b->pos, pos_valid, b);
    ckpt_add(l, prefix, "epoch", &b->epoch, sizeof b->epoch);
    ckpt_add(l, prefix, "rng", &b->rng, sizeof b->rng);
}
