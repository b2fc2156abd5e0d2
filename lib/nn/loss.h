/* loss.h - softmax cross-entropy on row-major logits, per sample, with per-sample weights.
 * c_n = logsumexp_j z[n, j] - z[n, y_n], computed with the max subtracted (no overflow for
 * logits of any size) and accumulated in double. Labels are class indices in [0, C). */
#ifndef EG_LOSS_H
#define EG_LOSS_H

#include <stddef.h>
#include <stdint.h>

// losses: (N) written with c_n.  logits: (N, C)  labels: (N)
// Returns sum_n c_n (double). labels out of range are a bug (EG_ASSERT).
double xent_forward(const float *logits, const int32_t *labels, size_t N, size_t C,
                    float *losses);

// dlogits: (N, C) written with dL/dz = dlosses[n] * (softmax(z[n]) - onehot(y_n)), where
// dlosses: (N) is dL/dc_n (w_n for a weighted sum, w_n / N for a weighted mean, 1/N for the mean).
// dlosses may be NULL, meaning 1/N for every sample (the plain mean).
void xent_backward(const float *logits, const int32_t *labels, const float *dlosses, size_t N,
                   size_t C, float *dlogits);

// The tangent of xent_forward and xent_backward along tlogits (N, C) and, unless NULL, tdlosses
// (N), the direction of dlosses. With p = softmax(z[n]), e = onehot(y_n), tz = tlogits[n]:
//   tdlogits[n] = tdlosses[n] (p - e) + dlosses[n] (p * tz - p (p . tz))   (N, C) written,
//   tlosses[n]  = (p - e) . tz                                            (N) written unless NULL.
// dlosses NULL means 1/N each, as in xent_backward. Sums in double.
void xent_tangent(const float *logits, const int32_t *labels, const float *dlosses,
                  const float *tlogits, const float *tdlosses, size_t N, size_t C,
                  float *tdlogits, float *tlosses);

// Number of samples whose largest logit is at their label (ties go to the lowest index).
size_t xent_correct(const float *logits, const int32_t *labels, size_t N, size_t C);

#endif // EG_LOSS_H
