/* optim.h - SGD (momentum, Nesterov, coupled weight decay) and Adam (coupled L2), with PyTorch's
 * exact update equations, applied to one flat parameter block; and learning-rate schedules.
 *
 * SGD, torch.optim.SGD (dampening 0):
 *   d = g + wd*p;  buf = d at the first step, else buf = momentum*buf + d;
 *   p -= lr * (nesterov ? d + momentum*buf : buf)     (momentum 0: p -= lr*d, no buffer)
 * Adam, torch.optim.Adam (amsgrad off), s = 1-based step count:
 *   d = g + wd*p;  m = b1*m + (1-b1)*d;  v = b2*v + (1-b2)*d*d;
 *   p -= (lr / (1 - b1^s)) * m / (sqrt(v) / sqrt(1 - b2^s) + eps)
 * The optimiser owns its state (momentum buffer, moments), sized for P floats. */
#ifndef EG_OPTIM_H
#define EG_OPTIM_H

#include <stdbool.h>
#include <stddef.h>

enum optim_kind { OPTIM_KIND_SGD, OPTIM_KIND_ADAM, OPTIM_KIND__COUNT };

struct optim_params {
    enum optim_kind kind;
    float lr;
    float momentum;     // SGD
    bool nesterov;      // SGD; requires momentum > 0
    float weight_decay; // both: coupled L2 added to the gradient
    float beta1, beta2, eps; // Adam (PyTorch defaults 0.9, 0.999, 1e-8)
};

struct optim {
    struct optim_params p;
    size_t P;
    size_t steps;  // steps taken so far
    float *buf;    // SGD momentum buffer or Adam first moment: (P)
    float *buf2;   // Adam second moment: (P); NULL for SGD
};

// Default settings of each kind as in PyTorch (lr must still be set).
struct optim_params optim_defaults(enum optim_kind kind);
// Returns NULL when p is valid, else a static reason naming the field ("lr must be finite and
// >= 0", ...). Each kind checks only its own fields (lr 0 is allowed, as in PyTorch).
const char *optim_params_check(const struct optim_params *p);
// Allocates an optimiser for P parameters; p must pass optim_params_check (EG_ASSERT).
// Caller frees with optim_free.
struct optim *optim_new(const struct optim_params *p, size_t P);
void optim_free(struct optim *o);
// Bytes of the state optim_new(p, P) allocates (0, P or 2P floats), without allocating it.
double optim_state_bytes(const struct optim_params *p, size_t P);
// One step: params (P) updated from grads (P) with learning rate lr (the schedule's value,
// finite and >= 0). grads is not modified.
void optim_step(struct optim *o, float *params, const float *grads, float lr);
// Forgets the state (as a fresh optimiser).
void optim_reset(struct optim *o);

struct ckpt_list;
// Adds the optimiser's resumable state to a checkpoint list (io/checkpoint.h): <prefix>steps,
// and <prefix>buf / <prefix>buf2 where the kind has them (SGD with momentum: buf; Adam: both).
// The sections point into o, so loading the list restores o exactly. o NULL adds nothing.
void optim_sections(struct optim *o, const char *prefix, struct ckpt_list *l);

enum schedule_kind { SCHEDULE_KIND_CONSTANT, SCHEDULE_KIND_STEP, SCHEDULE_KIND_COSINE };

#define SCHEDULE_MAX_MILESTONES 16

struct schedule {
    enum schedule_kind kind;
    float base_lr;
    // step: lr = base * gamma^(number of milestones <= epoch), like torch MultiStepLR
    size_t milestones[SCHEDULE_MAX_MILESTONES];
    size_t nmilestones;
    float gamma;
    // cosine: lr = min + (base - min) * (1 + cos(pi * epoch / total)) / 2, CosineAnnealingLR
    size_t total_epochs;
    float min_lr;
};

// The learning rate for (0-based) epoch. epoch may be fractional for per-step cosine schedules.
float schedule_lr(const struct schedule *s, double epoch);

#endif // EG_OPTIM_H
