/* rng.c - xoshiro256** (Blackman and Vigna, 2018) with splitmix64 seeding.
 * The algorithms are public-domain descriptions; this is our own implementation. */
#include "rng.h"

#include <math.h>

#include "status.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(struct rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->spare = 0.0;
    r->has_spare = 0;
}

void rng_seed_stream(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = stream;
    rng_seed(r, seed ^ splitmix64(&x));
}

uint64_t rng_u64(struct rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(struct rng *r)
{
    return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    EG_ASSERT(n >= 1);
    // Rejection sampling on the top of the range removes the modulo bias.
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = rng_u64(r);
    } while (x >= limit);
    return x % n;
}

double rng_gaussian(struct rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do {
        u1 = rng_uniform(r);
    } while (u1 <= 0.0); // log(0) would be -inf
    u2 = rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double ang = 6.283185307179586476925 * u2;
    r->spare = rad * sin(ang);
    r->has_spare = 1;
    return rad * cos(ang);
}

float rng_rademacher(struct rng *r)
{
    return (rng_u64(r) >> 63) ? 1.0f : -1.0f;
}

void rng_fill_uniform(struct rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)lo + (double)(hi - lo) * rng_uniform(r));
}

void rng_fill_gaussian(struct rng *r, float *x, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)mean + (double)std * rng_gaussian(r));
}

void rng_fill_rademacher(struct rng *r, float *x, size_t n, float scale)
{
    // One 64-bit draw gives 64 signs.
    for (size_t i = 0; i < n; i += 64) {
        uint64_t bits = rng_u64(r);
        size_t m = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < m; j++) x[i + j] = ((bits >> j) & 1u) ? scale : -scale;
    }
}

void rng_shuffle(struct rng *r, size_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

void rng_permutation(struct rng *r, size_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++) idx[i] = i;
    rng_shuffle(r, idx, n);
}
