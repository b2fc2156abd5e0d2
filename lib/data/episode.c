/* episode.c - per-class image lists and N-way K-shot Q-query episode sampling.
 * Classes and images are drawn without replacement by partial Fisher-Yates on copies, so
 * every ordered choice of classes and images is equally likely. class_index groups images by
 * their current label (d->labels; few-shot data carries no noise, so it equals clean_labels).
 * Both structs own their arrays; release them with class_index_deinit / episode_deinit.
 * episode_images turns an episode into the float batch the learner sees (augment_image). */
#include "episode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/dataset.h"

void class_index_build(struct class_index *ci, const struct dataset *d)
{
    const size_t N = d->classes;
    size_t *offsets = eg_xcalloc(N + 1, sizeof *offsets);
    for (size_t i = 0; i < d->n; i++) {
        int32_t y = d->labels[i];
        EG_ASSERT(y >= 0 && (size_t)y < N);
        offsets[(size_t)y + 1]++;
    }
    for (size_t k = 0; k < N; k++)
        offsets[k + 1] += offsets[k];
    // A stable counting sort keeps each class's images in increasing index order.
    size_t *fill = eg_xmalloc_array(N, sizeof *fill);
    memcpy(fill, offsets, N * sizeof *fill);
    size_t *idx = eg_xmalloc_array(d->n, sizeof *idx);
    for (size_t i = 0; i < d->n; i++)
        idx[fill[d->labels[i]]++] = i;
    free(fill);
    *ci = (struct class_index){.classes = N, .offsets = offsets, .idx = idx};
}

void class_index_deinit(struct class_index *ci)
{
    if (ci == NULL) return;
    free(ci->offsets);
    free(ci->idx);
    *ci = (struct class_index){0};
}

static size_t class_size(const struct class_index *ci, size_t k)
{
    return ci->offsets[k + 1] - ci->offsets[k];
}

// Moves a uniform random ordered choice of m distinct elements of a[0..n) into a[0..m)
// (the first m steps of Fisher-Yates). Requires m <= n.
static void partial_shuffle(struct rng *rng, size_t *a, size_t n, size_t m)
{
    for (size_t t = 0; t < m; t++) {
        size_t j = t + (size_t)rng_below(rng, n - t);
        size_t tmp = a[t];
        a[t] = a[j];
        a[j] = tmp;
    }
}

enum eg_status episode_sample(const struct class_index *ci, size_t n_way, size_t k_shot,
                              size_t q_query, int32_t domain, struct rng *rng, struct episode *ep,
                              struct eg_error *err)
{
    EG_ASSERT(n_way >= 1 && k_shot >= 1);
    EG_ASSERT(q_query <= SIZE_MAX - k_shot);
    const size_t need = k_shot + q_query;

    // Counted before any draw, so a failure leaves the rng where it was.
    size_t eligible = 0, largest = 0;
    for (size_t k = 0; k < ci->classes; k++) {
        eligible += class_size(ci, k) >= need;
        if (class_size(ci, k) > largest) largest = class_size(ci, k);
    }
    if (eligible < n_way) {
        return eg_errorf(err, EG_ERR_ARG,
                         "a %zu-way episode needs %zu classes with at least %zu images (%zu "
                         "shot + %zu query), but only %zu of the %zu classes have that many",
                         n_way, n_way, need, k_shot, q_query, eligible, ci->classes);
    }

    size_t *pool = eg_xmalloc_array(eligible, sizeof *pool);
    size_t m = 0;
    for (size_t k = 0; k < ci->classes; k++) {
        if (class_size(ci, k) >= need) pool[m++] = k;
    }
    partial_shuffle(rng, pool, eligible, n_way);

    struct episode e = {.n_way = n_way, .k_shot = k_shot, .q_query = q_query, .domain = domain};
    e.classes = eg_xmalloc_array(n_way, sizeof *e.classes);
    e.support = eg_xmalloc_array(n_way * k_shot, sizeof *e.support);
    e.query = eg_xmalloc_array(n_way * q_query, sizeof *e.query);
    memcpy(e.classes, pool, n_way * sizeof *e.classes);
    free(pool);

    // Per chosen class: `need` distinct images; support = the first k_shot, query = the rest.
    size_t *imgs = eg_xmalloc_array(largest, sizeof *imgs);
    for (size_t c = 0; c < n_way; c++) {
        size_t k = e.classes[c], count = class_size(ci, k);
        memcpy(imgs, ci->idx + ci->offsets[k], count * sizeof *imgs);
        partial_shuffle(rng, imgs, count, need);
        memcpy(e.support + c * k_shot, imgs, k_shot * sizeof *imgs);
        memcpy(e.query + c * q_query, imgs + k_shot, q_query * sizeof *imgs);
    }
    free(imgs);
    *ep = e;
    return EG_OK;
}

void episode_deinit(struct episode *ep)
{
    if (ep == NULL) return;
    free(ep->classes);
    free(ep->support);
    free(ep->query);
    *ep = (struct episode){0};
}

void episode_images(const struct dataset *d, const struct episode *ep, const struct augment *aug,
                    struct rng *rng, float *x)
{
    const size_t bytes = dataset_image_bytes(d), numel = shape_numel(d->shape);
    const size_t ns = ep->n_way * ep->k_shot, nq = ep->n_way * ep->q_query;
    for (size_t t = 0; t < ns + nq; t++) {
        size_t i = t < ns ? ep->support[t] : ep->query[t - ns];
        EG_ASSERT(i < d->n);
        augment_image(aug, d->shape, d->pixels + i * bytes, x + t * numel, rng);
    }
}
