/* episode.h - N-way K-shot Q-query episodes for few-shot learning, sampled from a dataset's
 * classes (CloserLookFewShot / LFT protocol: n_way random classes, then k_shot + q_query
 * distinct random images of each). Episode labels are 0..n_way-1 in the order the classes were
 * drawn; support and query are class-major. */
#ifndef EG_EPISODE_H
#define EG_EPISODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

struct dataset;
struct rng;

// Images of each class: class k owns idx[offsets[k] .. offsets[k+1]), in increasing index order.
struct class_index {
    size_t classes;
    size_t *offsets; // (classes + 1) owned
    size_t *idx;     // (n) owned
};

// Groups by d->labels. The deinit functions accept NULL and zero what they free.
void class_index_build(struct class_index *ci, const struct dataset *d);
void class_index_deinit(struct class_index *ci);

struct episode {
    size_t n_way, k_shot, q_query;
    int32_t domain;   // the caller's domain label (few-shot: which dataset it came from)
    size_t *classes;  // (n_way) owned: the dataset classes drawn
    size_t *support;  // (n_way * k_shot) owned: image indices, class-major
    size_t *query;    // (n_way * q_query) owned: image indices, class-major
};

// Samples one episode. EG_ERR_ARG (message naming the shortfall) when fewer than n_way classes
// have k_shot + q_query images; *ep and rng untouched on failure. Caller frees with
// episode_deinit.
enum eg_status episode_sample(const struct class_index *ci, size_t n_way, size_t k_shot,
                              size_t q_query, int32_t domain, struct rng *rng,
                              struct episode *ep, struct eg_error *err);
void episode_deinit(struct episode *ep);

// x: ((n_way * (k_shot + q_query)), d->shape) floats NCHW written with the episode's images:
// the support images (class-major) first, then the queries (class-major), each through
// augment_image(aug, ..., rng) in that order (rng may be NULL when aug draws nothing).
struct augment;
void episode_images(const struct dataset *d, const struct episode *ep, const struct augment *aug,
                    struct rng *rng, float *x);

#endif // EG_EPISODE_H
