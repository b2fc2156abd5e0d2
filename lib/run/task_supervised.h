/* task_supervised.h - task supervised: plain training of any backbone on any dataset (method
 * none only), evaluated on the test set (lib/run/classifier.h).
 *
 * Each step: the next training batch (shuffled, augmented), cross-entropy in training mode, one
 * optimiser step. metrics.csv: CLASSIFIER_COLUMNS (val_loss empty: there is no validation set).
 * No files of its own. Checkpoint: the classifier's sections. The check refuses a config whose
 * memory estimate (task_supervised_memory) exceeds the limit (memory.h). */
#ifndef EG_TASK_SUPERVISED_H
#define EG_TASK_SUPERVISED_H

#include "memory.h"
#include "task.h"

struct run_config;

extern const struct task_ops task_supervised;

// The run's memory estimate for cfg, which passed the task's other checks (classifier_estimate):
// what the check compares with the limit. Terms are added to e.
void task_supervised_memory(const struct run_config *cfg, struct memory_estimate *e);

#endif // EG_TASK_SUPERVISED_H
