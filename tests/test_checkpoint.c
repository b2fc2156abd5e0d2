/* test_checkpoint.c - atomic checkpoint files: round trip, atomic replacement, and every way a
 * load can fail (corruption, truncation, bad magic, other version, other config, other network,
 * missing file), each leaving the destination buffers untouched. Files live in the shared
 * temporary folder e2e_dir (helpers.h: e2e_setup in .init makes a fresh one per test, e2e_teardown
 * in .fini removes it). */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "core/status.h"
#include "helpers.h"
#include "io/checkpoint.h"

// ---------------------------------------------------------------------------------------------
// fixture folder (e2e_dir, helpers.h), file helpers

#define CKPT "checkpoint.bin" // the checkpoint's name in the fixture folder

TestSuite(checkpoint, .init = e2e_setup, .fini = e2e_teardown);

// Number of entries in the fixture folder (excluding . and ..).
static size_t dir_entries(void)
{
    DIR *dir = opendir(e2e_dir);
    cr_assert(dir != NULL);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(dir);
    return n;
}

// Recomputes the trailing CRC after a test edits the file image (so only the edit is wrong).
static void fix_crc(unsigned char *b, size_t len)
{
    uint32_t crc = (uint32_t)crc32(0L, b, (uInt)(len - 4));
    memcpy(b + len - 4, &crc, 4);
}

// ---------------------------------------------------------------------------------------------
// a small "network": params, momentum, a step counter

#define HASH 0x1234abcd5678ef01ull
enum { NP = 37, NM = 37 };

struct state {
    float params[NP];
    float momentum[NM];
    uint64_t step;
};

static void fill(struct state *s, float base)
{
    for (int i = 0; i < NP; i++) s->params[i] = base + (float)i * 0.25f;
    for (int i = 0; i < NM; i++) s->momentum[i] = -base - (float)i;
    s->step = (uint64_t)base * 1000u + 7u;
}

static void sections_of(struct state *s, struct ckpt_section out[3])
{
    out[0] = (struct ckpt_section){.name = "params", .data = s->params, .bytes = sizeof s->params};
    out[1] = (struct ckpt_section){.name = "momentum", .data = s->momentum,
                                   .bytes = sizeof s->momentum};
    out[2] = (struct ckpt_section){.name = "step", .data = &s->step, .bytes = sizeof s->step};
}

static void save_state(float base)
{
    struct state s;
    fill(&s, base);
    struct ckpt_section sec[3];
    sections_of(&s, sec);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH, sec, 3, &err), EG_OK), "%s", err.msg);
}

// Loads CKPT into a pattern-filled state, expects status `want` and a message containing
// `needle`, and checks that the destination was not touched.
static void expect_load_fails(enum eg_status want, const char *needle)
{
    const char *path = e2e_path(CKPT);
    struct state d;
    memset(&d, 0xA5, sizeof d);
    struct ckpt_section sec[3];
    sections_of(&d, sec);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_load(path, HASH, sec, 3, &err), want), "%s", err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    cr_assert(strstr(err.msg, needle) != NULL, "expected '%s' in: %s", needle, err.msg);
    const unsigned char *p = (const unsigned char *)&d;
    size_t i = 0;
    while (i < sizeof d && p[i] == 0xA5) i++;
    cr_assert(eq(sz, i, sizeof d), "destination byte %zu modified on failure", i);
}

// Byte offsets in the file written by save_state.
enum {
    OFF_VERSION = 8,
    OFF_HASH = 12,
    OFF_COUNT = 20,
    OFF_SEC0 = 24,                           // name of "params"
    OFF_SEC0_BYTES = OFF_SEC0 + 32,
    OFF_SEC0_DATA = OFF_SEC0 + 40,
    OFF_SEC1 = OFF_SEC0_DATA + NP * 4,       // name of "momentum"
};

// ---------------------------------------------------------------------------------------------
// tests

Test(checkpoint, round_trip_of_several_sections_is_byte_identical)
{
    struct state a, b;
    fill(&a, 3.0f);
    memset(&b, 0, sizeof b);
    struct ckpt_section sa[3], sb[3];
    sections_of(&a, sa);
    sections_of(&b, sb);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH, sa, 3, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, ckpt_load(e2e_path(CKPT), HASH, sb, 3, &err), EG_OK), "%s", err.msg);
    cr_assert(memcmp(&a, &b, sizeof a) == 0);

    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    cr_assert(eq(sz, len, (size_t)(24 + 3 * 40 + sizeof a.params + sizeof a.momentum + 8 + 4)));
    cr_assert(memcmp(f, "EGCKPT01", 8) == 0);
    free(f);

    // zero sections and an empty section are valid too
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH, NULL, 0, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, ckpt_load(e2e_path(CKPT), HASH, NULL, 0, &err), EG_OK), "%s", err.msg);
    struct ckpt_section empty = {.name = "nothing", .data = NULL, .bytes = 0};
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH, &empty, 1, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(int, ckpt_load(e2e_path(CKPT), HASH, &empty, 1, &err), EG_OK), "%s", err.msg);
}

Test(checkpoint, second_save_replaces_the_file_and_leaves_no_temp_files)
{
    save_state(1.0f);
    save_state(2.0f);
    cr_assert(eq(sz, dir_entries(), 1), "temp files left behind");
    struct state want, got;
    fill(&want, 2.0f);
    struct ckpt_section sec[3];
    sections_of(&got, sec);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_load(e2e_path(CKPT), HASH, sec, 3, &err), EG_OK), "%s", err.msg);
    cr_assert(memcmp(&want, &got, sizeof want) == 0);
}

Test(checkpoint, save_replaces_by_rename_so_an_open_reader_keeps_the_old_file)
{
    // Atomic replacement: the path switches to a new inode; the old content stays intact.
    save_state(1.0f);
    struct stat before, after;
    cr_assert(stat(e2e_path(CKPT), &before) == 0);
    FILE *old = fopen(e2e_path(CKPT), "rb");
    cr_assert(old != NULL);
    save_state(2.0f);
    cr_assert(stat(e2e_path(CKPT), &after) == 0);
    cr_assert(before.st_ino != after.st_ino);
    unsigned char head[OFF_SEC0_DATA + 4];
    cr_assert(fread(head, 1, sizeof head, old) == sizeof head);
    fclose(old);
    float p0;
    memcpy(&p0, head + OFF_SEC0_DATA, 4);
    cr_assert(p0 == 1.0f, "old reader saw %g", (double)p0);
}

Test(checkpoint, flipped_byte_is_a_crc_mismatch)
{
    save_state(1.0f);
    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    f[OFF_SEC0_DATA + 5] ^= 0x10;
    e2e_write_bytes(CKPT, f, len);
    free(f);
    expect_load_fails(EG_ERR_FORMAT, "corrupted (CRC mismatch)");
}

Test(checkpoint, flipped_crc_byte_is_a_crc_mismatch)
{
    save_state(1.0f);
    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    f[len - 1] ^= 0x01;
    e2e_write_bytes(CKPT, f, len);
    free(f);
    expect_load_fails(EG_ERR_FORMAT, "corrupted (CRC mismatch)");
}

Test(checkpoint, truncated_file_is_reported_as_truncated)
{
    save_state(1.0f);
    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    const size_t cuts[] = {len - 1, len - 4, OFF_SEC1 + 10, OFF_SEC0_DATA, OFF_SEC0, 22, 10, 5};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        e2e_write_bytes(CKPT, f, cuts[i]);
        expect_load_fails(EG_ERR_FORMAT, "truncated");
    }
    free(f);
}

Test(checkpoint, wrong_magic_is_not_a_checkpoint)
{
    save_state(1.0f);
    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    memcpy(f, "EGCKPT02", 8);
    e2e_write_bytes(CKPT, f, len);
    expect_load_fails(EG_ERR_FORMAT, "not an evograd checkpoint");
    e2e_write_bytes(CKPT, "hello, world\n", 13);
    expect_load_fails(EG_ERR_FORMAT, "not an evograd checkpoint");
    e2e_write_bytes(CKPT, "", 0);
    expect_load_fails(EG_ERR_FORMAT, "not an evograd checkpoint");
    free(f);
}

// Writes the checkpoint of save_state with format version v.
static void save_as_version(uint32_t v)
{
    save_state(1.0f);
    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    memcpy(f + OFF_VERSION, &v, 4);
    fix_crc(f, len);
    e2e_write_bytes(CKPT, f, len);
    free(f);
}

Test(checkpoint, other_format_version_names_both_versions)
{
    // version 1: the sections before the task interface (evograd 0.1.0)
    save_as_version(1);
    expect_load_fails(EG_ERR_FORMAT, "checkpoint format version 1, this build reads 4");
    expect_load_fails(EG_ERR_FORMAT, "written by another version of evograd");
    save_as_version(2); // evograd 0.2.0: the loop's section was smaller
    expect_load_fails(EG_ERR_FORMAT, "checkpoint format version 2, this build reads 4");
    save_as_version(3); // evograd 0.3.0: no diagnostics counters in the loop's section
    expect_load_fails(EG_ERR_FORMAT, "checkpoint format version 3, this build reads 4");
    save_as_version(5);
    expect_load_fails(EG_ERR_FORMAT, "checkpoint format version 5, this build reads 4");
}

Test(checkpoint, other_config_hash_is_a_different_config)
{
    save_state(1.0f);
    struct state d;
    memset(&d, 0xA5, sizeof d);
    struct ckpt_section sec[3];
    sections_of(&d, sec);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_load(e2e_path(CKPT), HASH + 1, sec, 3, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, e2e_path(CKPT)) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "was written by a different config; start a fresh run or use the "
                              "config it was written with") != NULL,
              "%s", err.msg);
    const unsigned char *p = (const unsigned char *)&d;
    size_t i = 0;
    while (i < sizeof d && p[i] == 0xA5) i++;
    cr_assert(eq(sz, i, sizeof d), "destination byte %zu modified on failure", i);
}

Test(checkpoint, other_config_with_a_bigger_network_is_a_different_config)
{
    // A file larger than the expected sections is judged by its header, not read in full.
    float big[200] = {0};
    struct ckpt_section s = {.name = "params", .data = big, .bytes = sizeof big};
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH + 1, &s, 1, &err), EG_OK), "%s", err.msg);
    expect_load_fails(EG_ERR_FORMAT, "was written by a different config");
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH, &s, 1, &err), EG_OK), "%s", err.msg);
    expect_load_fails(EG_ERR_FORMAT, "the network differs");
}

Test(checkpoint, wrong_section_size_says_the_network_differs)
{
    // Same config hash, but "params" saved with fewer floats than the loader expects.
    struct state s;
    fill(&s, 1.0f);
    struct ckpt_section sec[3];
    sections_of(&s, sec);
    sec[0].bytes = 10 * sizeof(float);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH, sec, 3, &err), EG_OK), "%s", err.msg);
    char want[128];
    snprintf(want, sizeof want, "section 'params' has 40 bytes, expected %zu - the network differs",
             NP * sizeof(float));
    expect_load_fails(EG_ERR_FORMAT, want);
}

Test(checkpoint, wrong_section_name_or_count_is_reported)
{
    save_state(1.0f);
    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    memcpy(f + OFF_SEC1, "velocity", 8); // "momentum" -> "velocity"
    fix_crc(f, len);
    e2e_write_bytes(CKPT, f, len);
    expect_load_fails(EG_ERR_FORMAT, "section 2 is 'velocity', expected 'momentum'");
    free(f);

    // two sections where three are expected
    struct state s;
    fill(&s, 1.0f);
    struct ckpt_section sec[3];
    sections_of(&s, sec);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_save(e2e_path(CKPT), HASH, sec, 2, &err), EG_OK), "%s", err.msg);
    expect_load_fails(EG_ERR_FORMAT, "holds 2 sections, expected 3");
}

Test(checkpoint, corrupt_section_size_field_is_detected)
{
    // A huge size field cannot make the loader read past the file.
    save_state(1.0f);
    size_t len;
    unsigned char *f = e2e_read_bytes(CKPT, &len);
    const uint64_t huge = UINT64_MAX - 8;
    memcpy(f + OFF_SEC0_BYTES, &huge, 8);
    e2e_write_bytes(CKPT, f, len);
    expect_load_fails(EG_ERR_FORMAT, "truncated");
    // a smaller size field misaligns every later field: reported as damage, nothing copied
    const uint64_t small = 4;
    memcpy(f + OFF_SEC0_BYTES, &small, 8);
    e2e_write_bytes(CKPT, f, len);
    expect_load_fails(EG_ERR_FORMAT, e2e_path(CKPT));
    free(f);
}

Test(checkpoint, missing_file_is_an_io_error)
{
    expect_load_fails(EG_ERR_IO, "No such file or directory");
}

Test(checkpoint, save_into_a_missing_folder_fails_and_leaves_nothing)
{
    const char *path = e2e_path("no-such-dir/" CKPT);
    struct state s;
    fill(&s, 1.0f);
    struct ckpt_section sec[3];
    sections_of(&s, sec);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_save(path, HASH, sec, 3, &err), EG_ERR_IO));
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "No such file or directory") != NULL, "%s", err.msg);
    cr_assert(eq(sz, dir_entries(), 0));
}

Test(checkpoint, failed_save_keeps_the_old_checkpoint)
{
    // The destination is a non-empty directory, so the final rename fails: the temp file must
    // be removed and the error must name the path.
    save_state(1.0f);
    e2e_mkdir("d");
    e2e_write_bytes("d/x", "x", 1);
    const char *path = e2e_path("d");
    struct state s;
    fill(&s, 2.0f);
    struct ckpt_section sec[3];
    sections_of(&s, sec);
    struct eg_error err = {0};
    cr_assert(eq(int, ckpt_save(path, HASH, sec, 3, &err), EG_ERR_IO));
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    cr_assert(eq(sz, dir_entries(), 2), "temp file left behind");
}

// No fixture folder (an aborted test never reaches .fini): the name is checked before any file.
Test(checkpoint_contract, long_section_name_is_a_bug, .signal = SIGABRT)
{
    char x = 0;
    struct ckpt_section s = {.name = "a_section_name_of_32_characters_", .data = &x, .bytes = 1};
    ckpt_save("/nonexistent-evograd-dir/checkpoint.bin", HASH, &s, 1, NULL);
}

Test(checkpoint, a_list_joins_prefix_and_name_and_round_trips)
{
    struct state d = {0}, back;
    fill(&d, 3.0f);
    struct ckpt_list l = {.n = 0};
    ckpt_add(&l, "", "params", d.params, sizeof d.params);
    ckpt_add(&l, "mom", "entum", d.momentum, sizeof d.momentum);
    ckpt_add(&l, "", "step", &d.step, sizeof d.step);
    cr_assert(eq(sz, l.n, 3));
    cr_assert(strcmp(l.s[1].name, "momentum") == 0, "%s", l.s[1].name);
    struct eg_error err;
    cr_assert(ckpt_save(e2e_path(CKPT), HASH, l.s, l.n, &err) == EG_OK, "%s", err.msg);
    memset(&back, 0, sizeof back);
    struct ckpt_section sec[3];
    sections_of(&back, sec);
    cr_assert(ckpt_load(e2e_path(CKPT), HASH, sec, 3, &err) == EG_OK, "%s", err.msg);
    cr_assert(memcmp(&d, &back, sizeof d) == 0);
}

Test(checkpoint, a_list_refuses_a_name_of_32_bytes, .signal = SIGABRT)
{
    float v = 0.0f;
    struct ckpt_list l = {.n = 0};
    ckpt_add(&l, "a_prefix_of_sixteen_", "and_twelve..", &v, sizeof v);
}

// A section's check (ckpt_add_checked) sees the loaded bytes before anything is copied: when it
// refuses, the load fails naming the section and the reason, and no buffer changes.
static bool step_below_1000(const void *data, const void *ctx, char *why, size_t cap)
{
    (void)ctx;
    uint64_t step;
    memcpy(&step, data, sizeof step);
    if (step < 1000) return true;
    snprintf(why, cap, "step %llu is not below 1000", (unsigned long long)step);
    return false;
}

Test(checkpoint, a_section_check_refuses_before_anything_is_copied)
{
    save_state(2.0f); // step 2007
    struct state s;
    fill(&s, 9.0f);
    struct ckpt_list l = {.n = 0};
    ckpt_add(&l, "", "params", s.params, sizeof s.params);
    ckpt_add(&l, "", "momentum", s.momentum, sizeof s.momentum);
    ckpt_add_checked(&l, "", "step", &s.step, sizeof s.step, step_below_1000, NULL);
    struct eg_error err;
    cr_assert(eq(int, ckpt_load(e2e_path(CKPT), HASH, l.s, l.n, &err), EG_ERR_FORMAT));
    cr_assert(strstr(err.msg, "section 'step': step 2007 is not below 1000") != NULL, "%s",
              err.msg);
    struct state want;
    fill(&want, 9.0f);
    cr_assert(memcmp(&s, &want, sizeof s) == 0, "a refused load changed the buffers");
    save_state(0.5f); // step 7: passes
    cr_assert(eq(int, ckpt_load(e2e_path(CKPT), HASH, l.s, l.n, &err), EG_OK), "%s", err.msg);
    cr_assert(eq(u64, s.step, 7));
}
