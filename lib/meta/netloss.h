/* netloss.h - the validation loss every network meta-problem shares: the mean cross-entropy of a
 * network evaluated at other parameters theta, with its gradient. */
#ifndef EG_NETLOSS_H
#define EG_NETLOSS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/layer.h"

struct net;

// The mean cross-entropy of net at theta on x (m images, NCHW) with labels y, batch norm in
// mode, returned in double. dtheta: (net->nparams) written with its gradient unless NULL (may be
// net->grads). net->params are left as they were (net_swap_in / net_swap_out through saved,
// nparams floats); losses (m) and dlogits (m x classes) are work space.
double net_mean_xent_at(struct net *net, float *saved, const float *theta, const float *x,
                        const int32_t *y, size_t m, enum layer_mode mode, float *losses,
                        float *dlogits, float *dtheta);

#endif // EG_NETLOSS_H
