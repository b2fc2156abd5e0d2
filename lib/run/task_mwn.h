/* task_mwn.h - task mwn, label noise with Meta-Weight-Net (paper-spec 3.4, lib/tasks/mwn.h): a
 * weighting network of mwn.hidden units (the hyperparameters) maps each training sample's loss to
 * its weight; the meta-step learns it on a small clean meta set.
 *
 * Data: the training set (cut to data.train_size) split into a class-balanced clean meta set of
 * data.meta_size images and the rest, whose labels get data.noise (the split and the flip targets
 * from data.split_seed, the noise draws from the seed's stream 4). Each step: the next noisy
 * training batch and, with a method, the next meta batch (cycled, augmented as the training
 * set); mwn_step (the unrolled method's look-ahead follows the base learning rate unless
 * method.lookahead_lr is set). mwn.uniform_weights (method none only) trains on the plain mean
 * cross-entropy instead of the initial weighting network.
 *
 * metrics.csv: CLASSIFIER_COLUMNS, w_clean and w_noisy (the mean weight of the epoch's training
 * samples whose label is clean / corrupted; empty when there were none). Files: split.csv (image
 * counts, the noise asked for and realised) at the start, weight_curve.csv (the learned
 * weighting function on MWN_CURVE_POINTS losses in [0, MWN_CURVE_MAX]) at the end, unless
 * uniform_weights. Checkpoint: the classifier's sections, "mwn" (the weight sums) and "vnet".
 * The check refuses a config whose memory estimate (task_mwn_memory) exceeds the limit
 * (memory.h). */
#ifndef EG_TASK_MWN_H
#define EG_TASK_MWN_H

#include "memory.h"
#include "task.h"

struct run_config;

extern const struct task_ops task_mwn;

// The run's memory estimate for cfg, which passed the task's other checks: classifier_estimate
// and the weighting problem's buffers. Terms are added to e.
void task_mwn_memory(const struct run_config *cfg, struct memory_estimate *e);

#endif // EG_TASK_MWN_H
