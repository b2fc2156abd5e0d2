/* tangent.c - tangent passes shared by layers that are linear in their inputs and have no
 * parameters (average pools, flatten, residual add, option-A shortcut): the derivative of such a
 * layer along tx is the layer applied to tx, and the tangent of its backward is its backward
 * applied to tdy (layer.h). */
#include <string.h>

#include "core/status.h"
#include "layer.h"

void layer_linear_tforward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                           const float *const *tx, const float *y, float *ty)
{
    (void)x;
    (void)y;
    EG_ASSERT(l->nparams == 0);
    if (tx[0] == NULL) {
        // only the net's input has no tangent, and it feeds no two-input layer
        EG_ASSERT(l->nin == 1);
        memset(ty, 0, shape_numel(l->out_shape) * ctx->n * sizeof(float));
        return;
    }
    EG_ASSERT(l->nin == 1 || tx[1] != NULL);
    l->ops->forward(l, ctx, tx, ty);
}

void layer_linear_tbackward(struct layer *l, const struct layer_ctx *ctx, const float *const *x,
                            const float *const *tx, const float *y, const float *dy,
                            const float *tdy, float *const *tdx)
{
    (void)tx;
    (void)dy;
    struct layer_ctx c = *ctx;
    c.grads = NULL;
    l->ops->backward(l, &c, x, y, tdy, tdx);
}
