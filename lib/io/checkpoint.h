/* checkpoint.h - atomic checkpoint files: named binary sections, a header (magic, format version,
 * the config hash) and a CRC-32 of everything, written to a temporary file in the same folder,
 * flushed (fflush + fsync) and renamed over the old file, so a killed run never leaves a torn
 * checkpoint. Loading checks magic, version, hash, CRC and every section's name and size before
 * copying anything into the caller's buffers (all or nothing). Byte order is the machine's
 * (little-endian x86-64); a checkpoint moves between machines of the same kind. */
#ifndef EG_CHECKPOINT_H
#define EG_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

// Checks a section's bytes as loaded (data, the section's size) before anything is copied into
// place: true when they are usable; else false with why (cap bytes) saying what is out of range
// ("epoch 1099511627776 > train.epochs 10"). A checkpoint's CRC proves it is intact, not that
// it is ours: indices, positions and counters read from it are checked this way. data need not
// be aligned: read it with memcpy.
typedef bool (*ckpt_valid_fn)(const void *data, const void *ctx, char *why, size_t cap);

struct ckpt_section {
    const char *name; // short identifier, unique within a checkpoint, at most 31 bytes
    void *data;       // save: read from; load: written to
    size_t bytes;
    ckpt_valid_fn valid; // NULL: any bytes will do (floats, generator states)
    const void *ctx;     // for valid
};

#define CKPT_LIST_MAX 64
#define CKPT_NAME_MAX 32

// The sections of one checkpoint, gathered from the modules that own the state (the training
// loop, a task, each optimiser and batcher: optim_sections, batcher_sections), so that one list
// serves saving and loading alike. Names are copied in; data pointers are not owned.
struct ckpt_list {
    struct ckpt_section s[CKPT_LIST_MAX];
    char names[CKPT_LIST_MAX][CKPT_NAME_MAX];
    size_t n;
};

// Appends the section prefix + name (prefix may be ""), data[0..bytes). EG_ASSERT: room in the
// list, a name of 1 to 31 bytes, data not NULL unless bytes is 0.
void ckpt_add(struct ckpt_list *l, const char *prefix, const char *name, void *data,
              size_t bytes);
// ckpt_add with a check of the loaded bytes (ckpt_valid_fn; ctx not owned).
void ckpt_add_checked(struct ckpt_list *l, const char *prefix, const char *name, void *data,
                      size_t bytes, ckpt_valid_fn valid, const void *ctx);

// Writes sections[0..n) to path atomically.
enum eg_status ckpt_save(const char *path, uint64_t config_hash,
                         const struct ckpt_section *sections, size_t n, struct eg_error *err);

// Reads path into sections[0..n): the file must hold exactly these sections, in this order,
// with these sizes, and the given config hash ("checkpoint ... was written by a different
// config" otherwise). Corruption (CRC, truncation, bad magic) is reported as such, and so is a
// section its check (ckpt_add_checked) refuses: "section 'loop': epoch ... out of range". On
// failure no buffer is modified.
enum eg_status ckpt_load(const char *path, uint64_t config_hash,
                         const struct ckpt_section *sections, size_t n, struct eg_error *err);

#endif // EG_CHECKPOINT_H
