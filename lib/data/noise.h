/* noise.h - synthetic label noise as in Meta-Weight-Net's code (Shu et al. 2019), used by the
 * EvoGrad label-noise experiment. A noise matrix C (classes x classes, row-stochastic) gives
 * C[i][j] = P(noisy label j | clean label i); each training label is resampled from its row.
 *   unif:  C = rate/N * J + (1 - rate) * I   (a label can stay correct through the uniform part)
 *   flip:  C[i][i] = 1 - rate, C[i][r_i] = rate for one random other class r_i per row
 *   flip2: C[i][i] = 1 - rate, rate/2 to each of two distinct random other classes per row
 *   none:  C = I */
#ifndef EG_NOISE_H
#define EG_NOISE_H

#include <stdbool.h>
#include <stddef.h>

struct dataset;
struct rng;

enum noise_kind { NOISE_KIND_NONE, NOISE_KIND_UNIF, NOISE_KIND_FLIP, NOISE_KIND_FLIP2,
                  NOISE_KIND__COUNT };

// "none", "unif", "flip", "flip2"; and back (false when unknown).
const char *noise_kind_name(enum noise_kind kind);
bool noise_kind_find(const char *name, enum noise_kind *kind);
// NULL when (kind, rate, classes) is valid, else a static reason (rate in [0, 1]; flip needs
// 2 classes, flip2 3).
const char *noise_check(enum noise_kind kind, double rate, size_t classes);

// C: (classes, classes) written; (kind, rate, classes) must pass noise_check (EG_ASSERT). none
// is the identity at any rate. The random other classes of flip/flip2 come from rng (the
// paper's code reseeds with 1 for them; the caller chooses the generator).
void noise_matrix(enum noise_kind kind, double rate, size_t classes, struct rng *rng, double *C);

// Resamples d->labels[i] from row d->clean_labels[i] of C (classes x classes), in index order:
// one uniform draw u per label, the first class whose cumulative probability exceeds u (when
// rounding leaves the row sum below u, the last class of non-zero probability). Clean labels
// must lie in [0, classes) (EG_ASSERT). Returns the realised noise rate: the fraction of labels
// that differ from the clean ones.
double noise_apply(struct dataset *d, const double *C, struct rng *rng);

#endif // EG_NOISE_H
