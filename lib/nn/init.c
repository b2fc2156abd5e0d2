/* init.c - weight and bias initialisation as PyTorch does it (torch.nn.init).
 * nn.Linear / nn.Conv2d reset_parameters: kaiming_uniform_(a=sqrt(5)) gives the weight
 * U(-b, b) with b = gain*sqrt(3/fan_in), gain = sqrt(2/(1+5)), so b = 1/sqrt(fan_in); the bias is
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)). kaiming_normal_ (ReLU gain sqrt(2)) draws N(0, 2/fan). */
#include "layers.h"

#include <math.h>

#include "core/rng.h"
#include "core/status.h"

void layer_init_weight(float *w, size_t count, size_t fan_in, size_t fan_out,
                       enum init_kind init, struct rng *rng)
{
    EG_ASSERT(fan_in > 0 && fan_out > 0);
    switch (init) {
    case INIT_TORCH_DEFAULT: {
        float b = (float)(1.0 / sqrt((double)fan_in));
        rng_fill_uniform(rng, w, count, -b, b);
        break;
    }
    case INIT_KAIMING_FAN_IN:
        rng_fill_gaussian(rng, w, count, 0.0f, (float)sqrt(2.0 / (double)fan_in));
        break;
    case INIT_KAIMING_FAN_OUT:
        rng_fill_gaussian(rng, w, count, 0.0f, (float)sqrt(2.0 / (double)fan_out));
        break;
    default:
        EG_ASSERT(!"unknown init kind");
    }
}

void layer_init_bias(float *b, size_t count, size_t fan_in, struct rng *rng)
{
    EG_ASSERT(fan_in > 0);
    float bound = (float)(1.0 / sqrt((double)fan_in));
    rng_fill_uniform(rng, b, count, -bound, bound);
}
