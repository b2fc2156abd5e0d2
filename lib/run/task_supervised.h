/* task_supervised.h - task supervised: plain training of any backbone on any dataset (method
 * none only), evaluated on the test set (lib/run/classifier.h).
 *
 * Each step: the next training batch (shuffled, augmented), cross-entropy in training mode, one
 * optimiser step. metrics.csv: CLASSIFIER_COLUMNS (val_loss empty: there is no validation set).
 * No files of its own. Checkpoint: the classifier's sections. */
#ifndef EG_TASK_SUPERVISED_H
#define EG_TASK_SUPERVISED_H

#include "task.h"

extern const struct task_ops task_supervised;

#endif // EG_TASK_SUPERVISED_H
