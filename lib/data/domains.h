/* domains.h - the image domains of cross-domain few-shot learning (LFT, paper-spec 3.3): each
 * domain's classes split into base (training episodes), val (validation episodes) and novel
 * (test episodes) classes that never share a class or an image.
 *
 * Two kinds of domain:
 *
 *   image folder  root/base, root/val, root/novel, each a folder of class folders of PNGs (as
 *                 dataset_load's imagefolder_load reads them), when root has all three; otherwise
 *                 root itself is a folder of class folders and class i (byte order of the folder
 *                 names) goes to base when i % 2 == 0, val when i % 4 == 1, novel when i % 4 == 3
 *                 (the CUB rule of the LFT code; it gives Cars 98/49/49, Places 183/91/91,
 *                 Plantae 100/50/50 as the paper). Images are resized to the asked shape.
 *
 *   built-in      five domains made from the real Fashion-MNIST training images (idx files under
 *                 root, default /usr/share/datasets/fashion-mnist) by fixed transformations, in
 *                 the spirit of the rotated-MNIST domain-generalisation benchmarks:
 *                   fmnist-plain     the images as they are
 *                   fmnist-inverted  255 - v
 *                   fmnist-edges     Sobel gradient magnitude, min(255, round(|g|)); the
 *                                    one-pixel border of the output is 0
 *                   fmnist-blurred   3x3 binomial blur [1 2 1]/4 in x and y (coordinates
 *                                    clamped to the image), rounded half up: (s + 8) / 16
 *                   fmnist-dilated   3x3 maximum filter over the pixels inside the image
 *                                    (strokes one pixel thicker)
 *                 Domain d (its position in this list, 0..4) owns training images i with
 *                 i % 5 == d, so no image appears in two domains. Classes are garment x rotation,
 *                 Omniglot-style (Vinyals et al. 2016 make new classes by 90-degree rotations): the
 *                 j-th image of garment g in the domain (index order) is rotated by 90 * (j % 4)
 *                 degrees counter-clockwise and has class 4 g + j % 4, named "<garment>/rot<deg>"
 *                 ("tshirt/rot90"). The split is by garment with the same rule as above, so base
 *                 and novel never share a garment: base garments 0 2 4 6 8 (t-shirt, pullover,
 *                 coat, shirt, bag: 20 classes), val 1 5 9 (trouser, sandal, ankle boot: 12),
 *                 novel 3 7 (dress, sneaker: 8). About 300 images per class, 1x28x28.
 *
 * Labels of each split are renumbered 0..classes-1 in the order of the domain's class list;
 * class_names are always set. */
#ifndef EG_DOMAINS_H
#define EG_DOMAINS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "dataset.h"

enum fewshot_split { FEWSHOT_BASE, FEWSHOT_VAL, FEWSHOT_NOVEL, FEWSHOT__COUNT };

// "base", "val", "novel".
const char *fewshot_split_name(enum fewshot_split s);

// The split of class i of a domain without split folders (the rule above).
enum fewshot_split fewshot_split_of(size_t i);

#define DOMAIN_NAME_MAX 64
#define FMNIST_DOMAINS 5

struct domain {
    char name[DOMAIN_NAME_MAX];
    struct dataset split[FEWSHOT__COUNT]; // owned; labels 0..classes-1, class_names set
    size_t *orig_class[FEWSHOT__COUNT];   // (split[s].classes) owned: each class's index in the
                                          // domain's full class list (built-in: 4 g + r; image
                                          // folder without split folders: the folder's index;
                                          // with split folders: the index within that folder)
};

// The built-in domain names, in order ("fmnist-plain", ...); d < FMNIST_DOMAINS.
const char *fmnist_domain_name(size_t d);
// True when name is a built-in domain (sets *d).
bool fmnist_domain_find(const char *name, size_t *d);

// Loads built-in domain d from the Fashion-MNIST training files under root (NULL: the default
// folder; each file raw or .gz, as source.h). The transformation comes before the rotation.
// Any square image size is accepted (the rotations need square images). EG_ERR_IO /
// EG_ERR_FORMAT naming the file (every idx_load error, or non-square images); *out untouched
// on failure. Caller frees with domain_deinit.
enum eg_status domain_load_fmnist(const char *root, size_t d, struct domain *out,
                                  struct eg_error *err);

// Loads an image-folder domain (see above) at image shape `image`, named `name` (copied,
// truncated to DOMAIN_NAME_MAX - 1). Errors name the folder: a missing root, a split folder that
// is missing while another exists, a split with no class (fewer than 4 class folders without
// split folders), and every imagefolder_load error. Status EG_ERR_IO for a missing folder
// (the message names the first missing split folder), EG_ERR_FORMAT for too few classes.
// *out untouched on failure. Caller frees with domain_deinit.
enum eg_status domain_load_folder(const char *root, const char *name, struct shape image,
                                  struct domain *out, struct eg_error *err);

// Frees what d owns and zeroes it; NULL-safe and safe on a zeroed struct.
void domain_deinit(struct domain *d);

// Writes path as CSV with columns domain,role,split,class,orig_class,name,images: one row per
// class of every split of every domain, roles[i] naming domain i's role in the run ("seen",
// "unseen", ...); class is the label within the split, images its image count. Text cells
// have ',', '"', CR and LF replaced by '_' (CSV cells are plain). Written to path.tmp and
// renamed. EG_ERR_IO naming the file on failure (path.tmp removed).
enum eg_status domains_write_splits(const char *path, const struct domain *d,
                                    const char *const *roles, size_t nd, struct eg_error *err);

#endif // EG_DOMAINS_H
