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
 * (relation_evaluate): mean accuracy and its 95% interval in metrics.csv and summary.csv. Both
 * evaluations poll the run's stop request between episodes (and between the test's feature
 * chunks) and then end the epoch with EG_STOPPED (task.h).
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

#include "memory.h"
#include "task.h"

struct run_config;

extern const struct task_ops task_lft;

// The run's memory estimate for cfg, which passed the task's other checks (the check compares it
// with the limit, memory.h), from skeletons of the encoder, the relation module and the aux
// classifier (lft_model_build): the parameters with their gradients, the optimisers' state and
// the meta-problem's copies; the method's work space; the encoder's buffers for an episode (or
// the aux batch, or the test's feature chunks, whichever is largest), the relation module's for
// an episode's pairs (training or test) and the aux classifier's for its batch; the episode and
// aux batch buffers. The built-in domains' images and the test domain's features are counted;
// image-folder domains are not (their size is known only once they are read), and their aux
// classifier is sized for 64 classes (miniImageNet's). Terms are added to e.
void task_lft_memory(const struct run_config *cfg, struct memory_estimate *e);

#endif // EG_TASK_LFT_H

