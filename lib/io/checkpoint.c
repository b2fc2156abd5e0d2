/* checkpoint.c - atomic checkpoint files.
 * Layout (native byte order):
 *   "EGCKPT01" (8 bytes) | u32 version (CKPT_VERSION) | u64 config hash | u32 section count
 *   per section: name (32 bytes, NUL-padded) | u64 byte count | the bytes
 *   u32 CRC-32 (zlib) of everything before it
 * Saving writes "<path>.tmp.<pid>" in the same folder, fsyncs it and renames it over path, so
 * readers see the old file or the new one, never a mix. Loading reads the whole file, checks it
 * completely, and only then copies into the caller's buffers. */
#include "io/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/alloc.h"

#define CKPT_MAGIC "EGCKPT01"
#define CKPT_MAGIC_LEN 8
// 2 (evograd 0.2.0): the sections of the task interface (lib/run/task.h). 3 (0.3.0): the loop's
// section holds the reference loss of the blow-up rule. 4 (0.4.0): and the diagnostics' counters
// (hypergrad_diag.csv). Another version's checkpoint is refused with a message saying which
// version wrote it.
#define CKPT_VERSION 4u
#define CKPT_NAME_LEN CKPT_NAME_MAX
#define CKPT_HEADER_LEN (CKPT_MAGIC_LEN + 4 + 8 + 4)
#define CKPT_SECTION_HEAD_LEN (CKPT_NAME_LEN + 8)
#define CKPT_CRC_LEN 4

// Bytes the file for sections[0..n) takes.
static uint64_t ckpt_file_size(const struct ckpt_section *sections, size_t n)
{
    uint64_t total = CKPT_HEADER_LEN + CKPT_CRC_LEN;
    for (size_t i = 0; i < n; i++) {
        total += CKPT_SECTION_HEAD_LEN + (uint64_t)sections[i].bytes;
    }
    return total;
}

// A section name as stored: NUL-padded to 32 bytes. EG_ASSERTs that it fits (<= 31 bytes).
static void ckpt_name_field(char field[CKPT_NAME_LEN], const char *name)
{
    EG_ASSERT(name != NULL);
    size_t len = strlen(name);
    EG_ASSERT(len >= 1 && len < CKPT_NAME_LEN);
    memset(field, 0, CKPT_NAME_LEN);
    memcpy(field, name, len);
}

// ---------------------------------------------------------------------------------------------
// Saving

// A FILE writer that keeps the running CRC and remembers the first failure.
struct ckpt_writer {
    FILE *fp;
    uLong crc;
    bool failed;
};

static void put(struct ckpt_writer *w, const void *p, size_t len)
{
    if (w->failed || len == 0) { return; }
    if (fwrite(p, 1, len, w->fp) != len) {
        w->failed = true;
        return;
    }
    w->crc = crc32_z(w->crc, p, len);
}

// fsync the folder holding path, so the rename itself survives a crash. Best effort: some file
// systems refuse fsync on a directory, and the checkpoint is already complete either way.
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? eg_xstrdup(".") : eg_xstrdup(path);
    if (slash != NULL) { dir[slash == path ? 1 : (size_t)(slash - path)] = '\0'; }
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

void ckpt_add(struct ckpt_list *l, const char *prefix, const char *name, void *data,
              size_t bytes)
{
    ckpt_add_checked(l, prefix, name, data, bytes, NULL, NULL);
}

void ckpt_add_checked(struct ckpt_list *l, const char *prefix, const char *name, void *data,
                      size_t bytes, ckpt_valid_fn valid, const void *ctx)
{
    EG_ASSERT(l != NULL && prefix != NULL && name != NULL);
    EG_ASSERT(l->n < CKPT_LIST_MAX);
    EG_ASSERT(data != NULL || bytes == 0);
    int len = snprintf(l->names[l->n], CKPT_NAME_MAX, "%s%s", prefix, name);
    EG_ASSERT(len >= 1 && len < CKPT_NAME_MAX);
    l->s[l->n] = (struct ckpt_section){l->names[l->n], data, bytes, valid, ctx};
    l->n++;
}

enum eg_status ckpt_save(const char *path, uint64_t config_hash,
                         const struct ckpt_section *sections, size_t n, struct eg_error *err)
{
    EG_ASSERT(n <= UINT32_MAX);
    char name[CKPT_NAME_LEN];
    for (size_t i = 0; i < n; i++) {
        ckpt_name_field(name, sections[i].name);
        EG_ASSERT(sections[i].data != NULL || sections[i].bytes == 0);
    }

    size_t tlen = strlen(path) + 32;
    char *tmp = eg_xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

    FILE *fp = fopen(tmp, "wb");
    if (fp == NULL) {
        enum eg_status s = eg_errorf(err, EG_ERR_IO, "%s: cannot write checkpoint: %s: %s",
                                     path, tmp, strerror(errno));
        free(tmp);
        return s;
    }

    struct ckpt_writer w = { .fp = fp, .crc = crc32_z(0L, Z_NULL, 0), .failed = false };
    const uint32_t version = CKPT_VERSION, count = (uint32_t)n;
    put(&w, CKPT_MAGIC, CKPT_MAGIC_LEN);
    put(&w, &version, sizeof version);
    put(&w, &config_hash, sizeof config_hash);
    put(&w, &count, sizeof count);
    for (size_t i = 0; i < n; i++) {
        const uint64_t bytes = sections[i].bytes;
        ckpt_name_field(name, sections[i].name);
        put(&w, name, CKPT_NAME_LEN);
        put(&w, &bytes, sizeof bytes);
        put(&w, sections[i].data, sections[i].bytes);
    }
    const uint32_t crc = (uint32_t)w.crc;
    if (!w.failed && fwrite(&crc, 1, sizeof crc, fp) != sizeof crc) { w.failed = true; }

    // Every byte must be on disk before the rename makes the file visible under its real name.
    int e = 0;
    if (w.failed || fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0) {
        w.failed = true;
        e = errno;
    }
    if (fclose(fp) != 0 && !w.failed) {
        w.failed = true;
        e = errno;
    }
    if (!w.failed && rename(tmp, path) != 0) {
        w.failed = true;
        e = errno;
    }
    if (w.failed) {
        unlink(tmp);
        free(tmp);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot write checkpoint: %s", path,
                         strerror(e != 0 ? e : EIO));
    }
    free(tmp);
    sync_parent_dir(path);
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// Loading

// Reads exactly len bytes at the current position. Returns false on a short read or an error.
static bool read_exact(FILE *fp, void *buf, size_t len)
{
    return fread(buf, 1, len, fp) == len;
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static const char different_config[] =
    "checkpoint %s was written by a different config; start a fresh run or use the config it "
    "was written with";

// Checks the whole file image buf[0..size) against config_hash and sections[0..n); on success
// *offsets[i] is where section i's bytes start in buf. Fills err on failure.
static enum eg_status ckpt_check(const char *path, const unsigned char *buf, size_t size,
                                 uint64_t config_hash, const struct ckpt_section *sections,
                                 size_t n, size_t *offsets, struct eg_error *err)
{
    // (magic and version were checked by the caller before reading all of it)
    // Walk the structure first: a cut-off file is "truncated", not merely a CRC mismatch.
    uint32_t count = get_u32(buf + CKPT_MAGIC_LEN + 4 + 8);
    size_t off = CKPT_HEADER_LEN;
    for (uint32_t i = 0; i < count; i++) {
        if (size - off < CKPT_SECTION_HEAD_LEN + CKPT_CRC_LEN) {
            return eg_errorf(err, EG_ERR_FORMAT,
                             "%s: truncated (%zu bytes; section %u of %u is missing)", path, size,
                             (unsigned)i + 1, (unsigned)count);
        }
        uint64_t bytes = get_u64(buf + off + CKPT_NAME_LEN);
        off += CKPT_SECTION_HEAD_LEN;
        if (bytes > size - off - CKPT_CRC_LEN) {
            return eg_errorf(err, EG_ERR_FORMAT,
                             "%s: truncated (%zu bytes; section %u of %u needs %llu more)", path,
                             size, (unsigned)i + 1, (unsigned)count,
                             (unsigned long long)(bytes - (size - off - CKPT_CRC_LEN)));
        }
        if (i < n) { offsets[i] = off; }
        off += (size_t)bytes;
    }
    if (size - off < CKPT_CRC_LEN) {
        return eg_errorf(err, EG_ERR_FORMAT, "%s: truncated (%zu bytes; the CRC is missing)",
                         path, size);
    }
    uint32_t want = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), buf, off);
    if (size - off != CKPT_CRC_LEN || get_u32(buf + off) != want) {
        return eg_errorf(err, EG_ERR_FORMAT, "%s: corrupted (CRC mismatch)", path);
    }

    // Intact: now is it ours?
    if (get_u64(buf + CKPT_MAGIC_LEN + 4) != config_hash) {
        return eg_errorf(err, EG_ERR_FORMAT, different_config, path);
    }
    if (count != n) {
        return eg_errorf(err, EG_ERR_FORMAT, "%s: holds %u sections, expected %zu", path,
                         (unsigned)count, n);
    }
    for (size_t i = 0; i < n; i++) {
        char name[CKPT_NAME_LEN];
        ckpt_name_field(name, sections[i].name);
        const unsigned char *head = buf + offsets[i] - CKPT_SECTION_HEAD_LEN;
        if (memcmp(head, name, CKPT_NAME_LEN) != 0) {
            char got[CKPT_NAME_LEN + 1];
            memcpy(got, head, CKPT_NAME_LEN);
            got[CKPT_NAME_LEN] = '\0';
            for (char *c = got; *c != '\0'; c++) {
                if (*c < 32 || *c > 126) { *c = '?'; }
            }
            return eg_errorf(err, EG_ERR_FORMAT, "%s: section %zu is '%s', expected '%s'", path,
                             i + 1, got, sections[i].name);
        }
        uint64_t bytes = get_u64(head + CKPT_NAME_LEN);
        if (bytes != (uint64_t)sections[i].bytes) {
            return eg_errorf(err, EG_ERR_FORMAT,
                             "%s: section '%s' has %llu bytes, expected %zu - the network differs",
                             path, sections[i].name, (unsigned long long)bytes,
                             sections[i].bytes);
        }
    }
    for (size_t i = 0; i < n; i++) { // intact and ours: are its values usable?
        char why[256];
        if (sections[i].valid != NULL &&
            !sections[i].valid(buf + offsets[i], sections[i].ctx, why, sizeof why)) {
            return eg_errorf(err, EG_ERR_FORMAT,
                             "%s: section '%s': %s (the file is intact but was not written by "
                             "this run: start the run again)",
                             path, sections[i].name, why);
        }
    }
    return EG_OK;
}

enum eg_status ckpt_load(const char *path, uint64_t config_hash,
                         const struct ckpt_section *sections, size_t n, struct eg_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char name[CKPT_NAME_LEN];
        ckpt_name_field(name, sections[i].name);
        EG_ASSERT(sections[i].data != NULL || sections[i].bytes == 0);
    }
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        int e = errno;
        fclose(fp);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot stat checkpoint: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(fp);
        return eg_errorf(err, EG_ERR_FORMAT, "%s: not an evograd checkpoint (not a file)", path);
    }

    // The fixed header first: it says whether the rest is worth reading.
    unsigned char head[CKPT_HEADER_LEN];
    size_t hn = fread(head, 1, sizeof head, fp);
    enum eg_status s = EG_OK;
    if (ferror(fp)) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));
    } else if (memcmp(head, CKPT_MAGIC, hn < CKPT_MAGIC_LEN ? hn : CKPT_MAGIC_LEN) != 0 ||
               hn == 0) {
        s = eg_errorf(err, EG_ERR_FORMAT, "%s: not an evograd checkpoint", path);
    } else if (hn < CKPT_MAGIC_LEN + 4) {
        s = eg_errorf(err, EG_ERR_FORMAT, "%s: truncated (%zu bytes)", path, hn);
    } else if (get_u32(head + CKPT_MAGIC_LEN) != CKPT_VERSION) {
        s = eg_errorf(err, EG_ERR_FORMAT, "%s: checkpoint format version %u, this build reads %u "
                      "(written by another version of evograd: resume it with that version, "
                      "or start the run again)",
                      path, (unsigned)get_u32(head + CKPT_MAGIC_LEN), CKPT_VERSION);
    } else if (hn < CKPT_HEADER_LEN || (uint64_t)st.st_size < CKPT_HEADER_LEN + CKPT_CRC_LEN) {
        s = eg_errorf(err, EG_ERR_FORMAT, "%s: truncated (%lld bytes)", path,
                      (long long)st.st_size);
    }
    if (s != EG_OK) {
        fclose(fp);
        return s;
    }

    // Size bounds before allocating: a file far larger than these sections is not read (a
    // different config is the likely cause, and the header says so without the rest).
    uint64_t expect = ckpt_file_size(sections, n);
    if ((uint64_t)st.st_size > expect) {
        fclose(fp);
        if (get_u64(head + CKPT_MAGIC_LEN + 4) != config_hash) {
            return eg_errorf(err, EG_ERR_FORMAT, different_config, path);
        }
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: has %lld bytes, expected %llu for these sections - the network "
                         "differs",
                         path, (long long)st.st_size, (unsigned long long)expect);
    }

    size_t size = (size_t)st.st_size;
    unsigned char *buf = eg_xmalloc(size);
    memcpy(buf, head, CKPT_HEADER_LEN);
    if (!read_exact(fp, buf + CKPT_HEADER_LEN, size - CKPT_HEADER_LEN)) {
        // The file shrank since fstat (or a read error): either way it cannot be trusted.
        s = ferror(fp) ? eg_errorf(err, EG_ERR_IO, "%s: cannot read checkpoint: %s", path,
                                   strerror(errno))
                       : eg_errorf(err, EG_ERR_FORMAT, "%s: truncated while reading", path);
    }
    fclose(fp); // read-only: nothing to report

    size_t *offsets = eg_xcalloc(n > 0 ? n : 1, sizeof *offsets);
    if (s == EG_OK) { s = ckpt_check(path, buf, size, config_hash, sections, n, offsets, err); }
    if (s == EG_OK) { // all or nothing: every check has passed
        for (size_t i = 0; i < n; i++) {
            if (sections[i].bytes > 0) {
                memcpy(sections[i].data, buf + offsets[i], sections[i].bytes);
            }
        }
    }
    free(offsets);
    free(buf);
    return s;
}
