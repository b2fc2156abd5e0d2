/* netloss.c - the shared validation loss of the network meta-problems (netloss.h). */
#include "netloss.h"

#include <string.h>

#include "core/status.h"
#include "nn/loss.h"
#include "nn/net.h"

double net_mean_xent_at(struct net *net, float *saved, const float *theta, const float *x,
                        const int32_t *y, size_t m, enum layer_mode mode, float *losses,
                        float *dlogits, float *dtheta)
{
    EG_ASSERT(x != NULL && y != NULL && m >= 1);
    const size_t C = net_out_shape(net).c;
    net_swap_in(net, saved, theta);
    const float *logits = net_forward(net, x, m, mode);
    double L = xent_forward(logits, y, m, C, losses) / (double)m;
    if (dtheta != NULL) {
        xent_backward(logits, y, NULL, m, C, dlogits); // dlosses NULL: 1/m each, the mean
        net_zero_grad(net);
        net_backward(net, dlogits, NULL);
        if (dtheta != net->grads) memcpy(dtheta, net->grads, net->nparams * sizeof(float));
    }
    net_swap_out(net, saved, theta);
    return L;
}
