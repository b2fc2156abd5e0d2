/* task_lft.h - task lft, cross-domain few-shot learning with learned feature-wise
 * transformations (paper-spec 3.3, lib/tasks/lft.h): RelationNet on a ResNet encoder whose FT
 * layers (the hyperparameters) are meta-learned across domains.
 *
 * Data. lft.domains are loaded (data.dataset fashion_mnist: the built-in domains of
 * data/domains.h from data.root; imagefolder: data.root/<domain> at data.image_c/h/w); lft.unseen
 * is the test domain, the others are seen. splits.csv records every class of every split of
 * every domain and its role.
 *
 * Each epoch draws two different seen domains, pseudo-seen (PS) and pseudo-unseen (PU)
 * (paper-spec 3.3); each of its lft.episodes iterations samples a PS and a PU episode from their
 * base classes (the PU episode only when a meta-method needs it, but always drawn, so every
 * method sees the same PS episodes for a seed) and an aux batch from the aux domain's base
 * classes, and calls lft_step. The aux weight is lft.aux_decay^floor(20 epoch / epochs)
 * (0.9^floor(epoch/20) at the paper's 400 epochs).
 *
 * Evaluation. Every eval.every_epochs epochs (and after the last): lft.val_episodes episodes from
 * the aux domain's val classes (the reference validates on miniImageNet's), the encoder in eval
 * mode; the same episodes every time (their generator is re-seeded). After the last epoch: the
 * unseen domain's novel images through the eval-mode encoder, lft.test_episodes episodes of
 * n_way classes, lft.shot shots and lft.test_queries queries on those features
 * (relation_evaluate): mean accuracy and its 95% interval in metrics.csv and summary.csv.
 *
 * metrics.csv: epoch, step, wall_s, train_loss (the mean PS episode loss), train_acc (its query
 * accuracy), aux_loss, aux_weight, val_loss (the meta-steps' PU loss), val_acc, test_acc and
 * test_ci95 (after the last epoch only), lr, peak_rss_mb, ps_domain, pu_domain, ft_gamma and
 * ft_beta (the FT layers' mean gamma and beta); empty cells for what was not measured.
 *
 * Randomness, separate streams of the seed: model initialisation 1, episodes and augmentation 2,
 * evograd's perturbations 3, FT noise 5, validation episodes 6, test episodes 7; the aux batcher
 * has its own, seeded from stream 102. The checkpoint ("lft": the epoch's sums, the latest
 * evaluations, the epoch's domains and the generators; the encoder, its running statistics, the
 * relation module, the aux classifier and its batcher, every optimiser) holds all of them. */
#ifndef EG_TASK_LFT_H
#define EG_TASK_LFT_H

#include "task.h"

extern const struct task_ops task_lft;

#endif // EG_TASK_LFT_H

