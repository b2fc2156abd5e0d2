/* noise.c - Meta-Weight-Net's synthetic label noise (uniform_mix_C, flip_labels_C,
 * flip_labels_C_two in its train script) and the resampling of labels from a noise matrix.
 * Matrices are row-major doubles, (classes, classes), row i = P(noisy label | clean label i).
 * Nothing here allocates; the only state is the caller's struct rng. */
#include "noise.h"

#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "data/dataset.h"

static const char *const kind_names[NOISE_KIND__COUNT] = {
    [NOISE_KIND_NONE] = "none",
    [NOISE_KIND_UNIF] = "unif",
    [NOISE_KIND_FLIP] = "flip",
    [NOISE_KIND_FLIP2] = "flip2",
};

const char *noise_kind_name(enum noise_kind kind)
{
    EG_ASSERT((unsigned)kind < NOISE_KIND__COUNT);
    return kind_names[kind];
}

bool noise_kind_find(const char *name, enum noise_kind *kind)
{
    for (int k = 0; k < NOISE_KIND__COUNT; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (enum noise_kind)k;
            return true;
        }
    }
    return false;
}

const char *noise_check(enum noise_kind kind, double rate, size_t classes)
{
    if ((unsigned)kind >= NOISE_KIND__COUNT) return "unknown noise kind";
    // Written so that NaN fails too.
    if (!(rate >= 0.0 && rate <= 1.0)) return "noise rate must be in [0, 1]";
    if (classes < 1) return "noise needs at least 1 class";
    if (kind == NOISE_KIND_FLIP && classes < 2) return "flip noise needs at least 2 classes";
    if (kind == NOISE_KIND_FLIP2 && classes < 3) return "flip2 noise needs at least 3 classes";
    return NULL;
}

// The r-th class (0-based) among 0..classes-1 with class i left out: r < i stays, r >= i skips i.
static size_t other_class(size_t r, size_t i)
{
    return r < i ? r : r + 1;
}

void noise_matrix(enum noise_kind kind, double rate, size_t classes, struct rng *rng, double *C)
{
    EG_ASSERT(noise_check(kind, rate, classes) == NULL);
    const size_t N = classes;
    switch (kind) {
    case NOISE_KIND_NONE:
    case NOISE_KIND_UNIF: {
        // uniform_mix_C: rate * J/N + (1 - rate) * I; none is the same with rate 0.
        double p = kind == NOISE_KIND_NONE ? 0.0 : rate;
        for (size_t i = 0; i < N; i++) {
            for (size_t j = 0; j < N; j++)
                C[i * N + j] = p / (double)N;
            C[i * N + i] += 1.0 - p;
        }
        break;
    }
    case NOISE_KIND_FLIP:
    case NOISE_KIND_FLIP2:
        // flip_labels_C(_two): (1 - rate) * I, then per row one other class gets rate, or two
        // distinct other classes get rate/2 each, drawn uniformly among the classes != i.
        memset(C, 0, N * N * sizeof *C);
        for (size_t i = 0; i < N; i++) {
            C[i * N + i] = 1.0 - rate;
            if (kind == NOISE_KIND_FLIP) {
                size_t a = (size_t)rng_below(rng, N - 1);
                C[i * N + other_class(a, i)] = rate;
            } else {
                // Two distinct positions among the N - 1 others: b skips a the way a skips i.
                size_t a = (size_t)rng_below(rng, N - 1);
                size_t b = other_class((size_t)rng_below(rng, N - 2), a);
                C[i * N + other_class(a, i)] = rate / 2.0;
                C[i * N + other_class(b, i)] = rate / 2.0;
            }
        }
        break;
    case NOISE_KIND__COUNT: // excluded by noise_check
        break;
    }
}

double noise_apply(struct dataset *d, const double *C, struct rng *rng)
{
    const size_t N = d->classes;
    size_t changed = 0;
    for (size_t i = 0; i < d->n; i++) {
        int32_t y = d->clean_labels[i];
        EG_ASSERT(y >= 0 && (size_t)y < N);
        const double *row = C + (size_t)y * N;
        // np.random.choice(N, p=row): the first j with cumsum(row)[j] > u. If rounding leaves
        // the row's sum below u, take the last class with a nonzero probability rather than
        // one that can never be drawn.
        double u = rng_uniform(rng);
        double cum = 0.0;
        size_t pick = N;
        size_t last_positive = 0;
        for (size_t j = 0; j < N; j++) {
            if (row[j] > 0.0) last_positive = j;
            cum += row[j];
            if (u < cum) {
                pick = j;
                break;
            }
        }
        if (pick == N) pick = last_positive;
        d->labels[i] = (int32_t)pick;
        changed += d->labels[i] != y;
    }
    return d->n > 0 ? (double)changed / (double)d->n : 0.0;
}
