/* rng.h - the seeded random generator (xoshiro256**, seeded through splitmix64).
 * There is no global generator: every consumer receives a struct rng * explicitly, so the same
 * config and seed give the same numbers. The state is plain data (copy it to fork or checkpoint). */
#ifndef EG_RNG_H
#define EG_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
    uint64_t s[4];
    // Box-Muller makes two normals at a time; the second is kept here. (A 64-bit flag: the
    // struct has no padding, so it can be compared and checkpointed byte for byte.)
    double spare;
    uint64_t has_spare;
};

// Seeds the generator; any seed (0 included) gives a well-mixed state.
void rng_seed(struct rng *r, uint64_t seed);
// A generator for an independent stream: seeded from (seed, stream), e.g. one per data loader.
void rng_seed_stream(struct rng *r, uint64_t seed, uint64_t stream);
// Next 64 random bits.
uint64_t rng_u64(struct rng *r);
// Uniform double in [0, 1) with 53 random bits.
double rng_uniform(struct rng *r);
// Uniform integer in [0, n), without modulo bias. Requires n >= 1.
uint64_t rng_below(struct rng *r, uint64_t n);
// Standard normal N(0, 1) (Box-Muller, in double).
double rng_gaussian(struct rng *r);
// +1 or -1 with probability 1/2 each.
float rng_rademacher(struct rng *r);

// x: (n) written with U(lo, hi).
void rng_fill_uniform(struct rng *r, float *x, size_t n, float lo, float hi);
// x: (n) written with N(mean, std^2).
void rng_fill_gaussian(struct rng *r, float *x, size_t n, float mean, float std);
// x: (n) written with +scale or -scale (Rademacher times scale).
void rng_fill_rademacher(struct rng *r, float *x, size_t n, float scale);
// idx: (n) permuted in place (Fisher-Yates).
void rng_shuffle(struct rng *r, size_t *idx, size_t n);
// idx: (n) written with a random permutation of 0..n-1.
void rng_permutation(struct rng *r, size_t *idx, size_t n);

#endif // EG_RNG_H
