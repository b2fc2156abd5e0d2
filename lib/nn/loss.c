/* loss.c - softmax cross-entropy (F.cross_entropy) on row-major (N, C) logits.
 * Every row is shifted by its max before exp, so logits of any size (1000 and beyond) neither
 * overflow nor underflow to a zero sum; exponentials and sums are in double.
 * Nothing here allocates. */
#include "loss.h"

#include <math.h>

#include "core/status.h"

// Index of the largest of row[0..C), the lowest on ties.
static size_t row_argmax(const float *row, size_t C)
{
    size_t best = 0;
    for (size_t j = 1; j < C; j++) {
        if (row[j] > row[best]) best = j;
    }
    return best;
}

// Stable log(sum_j exp(row[j])) = m + log(sum_j exp(row[j] - m)), m = max_j row[j]; the sum is
// at least exp(0) = 1, so the log is finite.
static double row_logsumexp(const float *row, size_t C)
{
    double m = (double)row[row_argmax(row, C)];
    double sum = 0.0;
    for (size_t j = 0; j < C; j++)
        sum += exp((double)row[j] - m);
    return m + log(sum);
}

static size_t checked_label(int32_t y, size_t C)
{
    EG_ASSERT(y >= 0 && (size_t)y < C);
    return (size_t)y;
}

// losses: (N) written with c_n = logsumexp(z[n]) - z[n, y_n];  logits: (N, C);  labels: (N).
// Returns sum_n c_n in double. Requires C >= 1 and labels in [0, C) (EG_ASSERT).
double xent_forward(const float *logits, const int32_t *labels, size_t N, size_t C, float *losses)
{
    EG_ASSERT(C >= 1);
    double total = 0.0;
    for (size_t n = 0; n < N; n++) {
        const float *z = logits + n * C;
        size_t y = checked_label(labels[n], C);
        double c = row_logsumexp(z, C) - (double)z[y];
        losses[n] = (float)c;
        total += c;
    }
    return total;
}

// dlogits: (N, C) written with dlosses[n] * (softmax(z[n]) - onehot(y_n));  logits: (N, C);
// labels: (N);  dlosses: (N), or NULL for 1/N each (the mean). Same requirements as forward.
void xent_backward(const float *logits, const int32_t *labels, const float *dlosses, size_t N,
                   size_t C, float *dlogits)
{
    EG_ASSERT(C >= 1);
    for (size_t n = 0; n < N; n++) {
        const float *z = logits + n * C;
        float *dz = dlogits + n * C;
        size_t y = checked_label(labels[n], C);
        double d = dlosses != NULL ? (double)dlosses[n] : 1.0 / (double)N;
        double lse = row_logsumexp(z, C);
        // softmax_j = exp(z_j - lse); the exponent is <= 0 up to rounding, so it cannot overflow
        for (size_t j = 0; j < C; j++) {
            double p = exp((double)z[j] - lse);
            dz[j] = (float)(d * (p - (j == y ? 1.0 : 0.0)));
        }
    }
}

void xent_tangent(const float *logits, const int32_t *labels, const float *dlosses,
                  const float *tlogits, const float *tdlosses, size_t N, size_t C,
                  float *tdlogits, float *tlosses)
{
    EG_ASSERT(C >= 1);
    for (size_t n = 0; n < N; n++) {
        const float *z = logits + n * C, *tz = tlogits + n * C;
        float *tdz = tdlogits + n * C;
        const size_t y = checked_label(labels[n], C);
        const double d = dlosses != NULL ? (double)dlosses[n] : 1.0 / (double)N;
        const double td = tdlosses != NULL ? (double)tdlosses[n] : 0.0;
        const double lse = row_logsumexp(z, C);
        double ptz = 0.0; // p . tz
        for (size_t j = 0; j < C; j++) ptz += exp((double)z[j] - lse) * (double)tz[j];
        for (size_t j = 0; j < C; j++) {
            const double p = exp((double)z[j] - lse);
            tdz[j] = (float)(td * (p - (j == y ? 1.0 : 0.0)) + d * p * ((double)tz[j] - ptz));
        }
        if (tlosses != NULL) tlosses[n] = (float)(ptz - (double)tz[y]);
    }
}

// Counts n with argmax_j z[n, j] == y_n (ties to the lowest index). Labels in [0, C).
size_t xent_correct(const float *logits, const int32_t *labels, size_t N, size_t C)
{
    EG_ASSERT(C >= 1);
    size_t correct = 0;
    for (size_t n = 0; n < N; n++) {
        size_t y = checked_label(labels[n], C);
        correct += row_argmax(logits + n * C, C) == y;
    }
    return correct;
}
