/* optim.c - SGD and Adam over one flat float32 parameter block, and learning-rate schedules.
 * The update equations are PyTorch's (torch.optim.SGD with dampening 0, torch.optim.Adam with
 * amsgrad off), written out in optim.h. Each step is one loop over the P parameters, with the
 * per-element arithmetic in float; scalars that depend on the step count (Adam's bias
 * corrections) and the schedules are computed in double, then rounded once.
 * The optimiser owns its state buffers; optim_free releases them. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "io/checkpoint.h"

// The value of pi; M_PI is not declared under strict C11 + POSIX.
static const double PI = 3.14159265358979323846;

// ---------------------------------------------------------------------------------------------
// settings

struct optim_params optim_defaults(enum optim_kind kind)
{
    EG_ASSERT((int)kind >= 0 && kind < OPTIM_KIND__COUNT);
    // Both kinds carry every field at PyTorch's default, so that switching kind after the
    // defaults (as a config loader may) never leaves an unset field behind.
    return (struct optim_params){
        .kind = kind,
        .lr = 0.0f, // torch has no default for SGD; the caller always sets it
        .momentum = 0.0f,
        .nesterov = false,
        .weight_decay = 0.0f,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
    };
}

// Checks only the fields the kind uses: SGD ignores beta1/beta2/eps and Adam ignores
// momentum/nesterov. lr = 0 is accepted, as in PyTorch (a warmup schedule may start there).
// Each comparison is written so that NaN fails it.
const char *optim_params_check(const struct optim_params *p)
{
    EG_ASSERT(p != NULL);
    if (!((int)p->kind >= 0 && p->kind < OPTIM_KIND__COUNT)) return "unknown optimiser kind";
    if (!(isfinite(p->lr) && p->lr >= 0.0f)) return "lr must be finite and >= 0";
    if (!(isfinite(p->weight_decay) && p->weight_decay >= 0.0f)) {
        return "weight_decay must be finite and >= 0";
    }
    if (p->kind == OPTIM_KIND_SGD) {
        if (!(p->momentum >= 0.0f && p->momentum < 1.0f)) return "momentum must be in [0, 1)";
        // torch.optim.SGD: "Nesterov momentum requires a momentum and zero dampening"
        if (p->nesterov && !(p->momentum > 0.0f)) return "nesterov requires momentum > 0";
    } else {
        if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f)) return "beta1 must be in [0, 1)";
        if (!(p->beta2 >= 0.0f && p->beta2 < 1.0f)) return "beta2 must be in [0, 1)";
        if (!(isfinite(p->eps) && p->eps > 0.0f)) return "eps must be finite and > 0";
    }
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// optimiser

// SGD with momentum 0 keeps no state (buf stays NULL); SGD with momentum keeps buf (P);
// Adam keeps m in buf (P) and v in buf2 (P).
struct optim *optim_new(const struct optim_params *p, size_t P)
{
    EG_ASSERT(p != NULL);
    EG_ASSERT(optim_params_check(p) == NULL);
    struct optim *o = eg_xcalloc(1, sizeof *o);
    o->p = *p;
    o->P = P;
    if (p->kind == OPTIM_KIND_ADAM) {
        o->buf = eg_xcalloc_floats(P);
        o->buf2 = eg_xcalloc_floats(P);
    } else if (p->momentum > 0.0f) {
        o->buf = eg_xcalloc_floats(P);
    }
    return o;
}

double optim_state_bytes(const struct optim_params *p, size_t P)
{
    if (p->kind == OPTIM_KIND_ADAM) return 2.0 * (double)P * (double)sizeof(float);
    return p->momentum > 0.0f ? (double)P * (double)sizeof(float) : 0.0;
}

void optim_free(struct optim *o)
{
    if (o == NULL) return;
    free(o->buf);
    free(o->buf2);
    free(o);
}

void optim_reset(struct optim *o)
{
    EG_ASSERT(o != NULL);
    o->steps = 0;
    // Not strictly needed for SGD (the first step overwrites buf), but Adam's moments start at 0.
    if (o->buf != NULL) memset(o->buf, 0, o->P * sizeof(float));
    if (o->buf2 != NULL) memset(o->buf2, 0, o->P * sizeof(float));
}

// torch.optim.SGD, dampening 0:
//   d = g + wd*p;  buf = d (first step) or momentum*buf + d;
//   p -= lr * (nesterov ? d + momentum*buf : buf);   momentum 0: p -= lr*d.
static void sgd_step(struct optim *o, float *params, const float *grads, float lr)
{
    const float wd = o->p.weight_decay, mu = o->p.momentum;
    const size_t P = o->P;
    if (o->buf == NULL) {
        for (size_t i = 0; i < P; i++)
            params[i] -= lr * (grads[i] + wd * params[i]);
        return;
    }
    float *buf = o->buf;
    const bool first = o->steps == 0, nesterov = o->p.nesterov;
    for (size_t i = 0; i < P; i++) {
        float d = grads[i] + wd * params[i];
        buf[i] = first ? d : mu * buf[i] + d;
        params[i] -= lr * (nesterov ? d + mu * buf[i] : buf[i]);
    }
}

// torch.optim.Adam (single-tensor path, amsgrad off), s = 1-based step count:
//   d = g + wd*p;  m = b1*m + (1-b1)*d;  v = b2*v + (1-b2)*d*d;
//   p -= (lr / (1 - b1^s)) * m / (sqrt(v) / sqrt(1 - b2^s) + eps).
// eps is added after the bias correction of sqrt(v), as PyTorch does. 1 - b^s is computed in
// double: b2^s stays near 1 for thousands of steps, so in float the subtraction would cancel
// most significant digits (a 3e-5 relative error in 1 - b2^2 already).
static void adam_step(struct optim *o, float *params, const float *grads, float lr)
{
    const float wd = o->p.weight_decay, b1 = o->p.beta1, b2 = o->p.beta2, eps = o->p.eps;
    const double s = (double)(o->steps + 1);
    const float step_size = (float)((double)lr / (1.0 - pow((double)b1, s)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, s));
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    float *m = o->buf, *v = o->buf2;
    const size_t P = o->P;
    for (size_t i = 0; i < P; i++) {
        float d = grads[i] + wd * params[i];
        m[i] = b1 * m[i] + c1 * d;
        v[i] = b2 * v[i] + c2 * d * d;
        params[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

void optim_step(struct optim *o, float *params, const float *grads, float lr)
{
    EG_ASSERT(o != NULL);
    EG_ASSERT(o->P == 0 || (params != NULL && grads != NULL));
    EG_ASSERT(isfinite(lr) && lr >= 0.0f);
    switch (o->p.kind) {
    case OPTIM_KIND_SGD:
        sgd_step(o, params, grads, lr);
        break;
    case OPTIM_KIND_ADAM:
        adam_step(o, params, grads, lr);
        break;
    default:
        EG_ASSERT(!"unknown optimiser kind");
    }
    o->steps++;
}

// ---------------------------------------------------------------------------------------------
// schedules

// Constant: base_lr. Step (torch MultiStepLR): base_lr * gamma^(number of milestones <= epoch);
// a milestone listed twice counts twice, as in torch's Counter. Cosine (the closed form of
// torch CosineAnnealingLR): min + (base - min) * (1 + cos(pi * e / total)) / 2 with e = epoch
// clamped to [0, total], so the rate stays at min_lr after the last epoch.
// Requires nmilestones <= SCHEDULE_MAX_MILESTONES, total_epochs > 0 for cosine, and epoch not
// NaN (EG_ASSERT).
float schedule_lr(const struct schedule *s, double epoch)
{
    EG_ASSERT(s != NULL);
    EG_ASSERT(!isnan(epoch));
    switch (s->kind) {
    case SCHEDULE_KIND_CONSTANT:
        return s->base_lr;
    case SCHEDULE_KIND_STEP: {
        EG_ASSERT(s->nmilestones <= SCHEDULE_MAX_MILESTONES);
        double lr = (double)s->base_lr;
        for (size_t i = 0; i < s->nmilestones; i++) {
            if ((double)s->milestones[i] <= epoch) lr *= (double)s->gamma;
        }
        return (float)lr;
    }
    case SCHEDULE_KIND_COSINE: {
        EG_ASSERT(s->total_epochs > 0);
        double total = (double)s->total_epochs;
        double e = epoch < 0.0 ? 0.0 : epoch > total ? total : epoch;
        double lo = (double)s->min_lr, hi = (double)s->base_lr;
        return (float)(lo + (hi - lo) * (1.0 + cos(PI * e / total)) / 2.0);
    }
    default:
        EG_ASSERT(!"unknown schedule kind");
    }
    return 0.0f; // not reached: EG_ASSERT aborts
}

void optim_sections(struct optim *o, const char *prefix, struct ckpt_list *l)
{
    if (o == NULL) return;
    ckpt_add(l, prefix, "steps", &o->steps, sizeof o->steps);
    if (o->buf != NULL) ckpt_add(l, prefix, "buf", o->buf, o->P * sizeof(float));
    if (o->buf2 != NULL) ckpt_add(l, prefix, "buf2", o->buf2, o->P * sizeof(float));
}
