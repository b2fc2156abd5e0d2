/* fuzz_config.c - libFuzzer harness for the config loader (lib/io/config.c).
 * Each input is tried twice: as a whole YAML file with no overrides, and split at its first
 * newline into one `key.path=value` override (the first line) and the file (the rest). Whatever
 * config_load returns is fine; crashes, sanitizer reports and leaks are the findings. When a load
 * succeeds, the documented round trip is checked too: the resolved YAML (config_to_string) must
 * load again and resolve to the same text, else the harness aborts.
 * Build and run: see fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// One temp file per fuzzing process, created on first use and rewritten on every call.
static char g_path[64];
static int g_fd = -1;

static void remove_temp(void)
{
    if (g_fd >= 0) {
        close(g_fd);
        unlink(g_path);
    }
}

// Replaces the temp file's content with bytes[0..len). Aborts if the file cannot be written:
// the harness would otherwise test the wrong input.
static void put_file(const void *bytes, size_t len)
{
    if (g_fd < 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(g_path, sizeof g_path, "%s/evograd-fuzz-XXXXXX",
                 dir != NULL && strlen(dir) < 40 ? dir : "/tmp");
        g_fd = mkstemp(g_path);
        if (g_fd < 0) {
            perror("fuzz_config: mkstemp");
            abort();
        }
        atexit(remove_temp);
    }
    if (ftruncate(g_fd, 0) != 0 || (len > 0 && pwrite(g_fd, bytes, len, 0) != (ssize_t)len)) {
        perror("fuzz_config: writing the temp file");
        abort();
    }
}

// Loads the temp file with the given overrides; on success checks the resolved-config round trip.
static void load_and_check(const char *const *overrides, size_t noverrides)
{
    struct run_config cfg;
    struct eg_error err;
    if (config_load(g_path, overrides, noverrides, &cfg, &err) != EG_OK) { return; }

    char *first = config_to_string(&cfg);
    (void)config_hash(&cfg);
    put_file(first, strlen(first));
    struct run_config again;
    if (config_load(g_path, NULL, 0, &again, &err) != EG_OK) {
        fprintf(stderr, "fuzz_config: the resolved config does not load: %s\n--- resolved:\n%s",
                err.msg, first);
        abort();
    }
    char *second = config_to_string(&again);
    if (strcmp(first, second) != 0) {
        fprintf(stderr, "fuzz_config: round trip changed the config\n--- first:\n%s--- second:\n%s",
                first, second);
        abort();
    }
    free(second);
    free(first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // 1. the whole input as the file
    put_file(data, size);
    load_and_check(NULL, 0);

    // 2. first line = one override (NUL-terminated copy), rest = the file
    const uint8_t *nl = memchr(data, '\n', size);
    size_t olen = nl != NULL ? (size_t)(nl - data) : size;
    char *override = malloc(olen + 1);
    if (override == NULL) { return 0; }
    memcpy(override, data, olen);
    override[olen] = '\0';
    size_t rest = nl != NULL ? size - olen - 1 : 0;
    put_file(nl != NULL ? nl + 1 : data, rest);
    const char *const overrides[] = { override };
    load_and_check(overrides, 1);
    free(override);
    return 0;
}
