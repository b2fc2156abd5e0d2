/* task_rotation.h - task rotation, the paper's rotation experiment (paper-spec 3.2,
 * lib/tasks/rotation.h): a backbone trained through a learned rotation of its training images
 * (one angle, the hyperparameter, rotation.init_deg at the start), validated on images rotated by
 * rotation.degrees, so that the meta-step learns that angle.
 *
 * Data: training images [0, rotation.train_end) of the training set (cut to data.train_size),
 * validation images [rotation.val_begin, rotation.val_end) and every test image rotated by
 * rotation.degrees (data_rotation_split). Each step: the next training batch and, with a method,
 * the next validation batch (cycled, not augmented); rotation_step.
 * metrics.csv: CLASSIFIER_COLUMNS, angle_deg (the learned angle) and test_acc_back (the test
 * accuracy with the test images rotated back by the learned angle). Checkpoint: the classifier's
 * sections and "rotation" (the angle). The check refuses a config whose memory estimate
 * (task_rotation_memory) exceeds the limit (memory.h). */
#ifndef EG_TASK_ROTATION_H
#define EG_TASK_ROTATION_H

#include "memory.h"
#include "task.h"

struct run_config;

extern const struct task_ops task_rotation;

// The run's memory estimate for cfg, which passed the task's other checks: classifier_estimate
// and the rotation problem's buffers. Terms are added to e.
void task_rotation_memory(const struct run_config *cfg, struct memory_estimate *e);

#endif // EG_TASK_ROTATION_H
