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
 * sections and "rotation" (the angle). */
#ifndef EG_TASK_ROTATION_H
#define EG_TASK_ROTATION_H

#include "task.h"

extern const struct task_ops task_rotation;

#endif // EG_TASK_ROTATION_H
