/* csv.h - result files. A CSV file is written one row at a time and flushed after every row, so
 * a killed run keeps every finished row. Floats are formatted %.9g (round-trips float32), and
 * setlocale is never called, so the decimal point is '.'. Cells are plain: no commas, quotes or
 * newlines (the writer rejects them as a bug, EG_ASSERT). */
#ifndef EG_CSV_H
#define EG_CSV_H

#include <stddef.h>

#include "core/status.h"

struct csv; // an open CSV file (opaque)

// Creates (truncates) path and writes the header row. *out set on success.
enum eg_status csv_create(const char *path, const char *const *columns, size_t ncols,
                          struct csv **out, struct eg_error *err);
// Re-opens a CSV written by csv_create for a resumed run: checks that its header is exactly
// columns, keeps its first keep_rows data rows, drops the rest (rows written after the
// checkpoint the run resumes from), and appends after them. Errors name the file.
enum eg_status csv_reopen(const char *path, const char *const *columns, size_t ncols,
                          size_t keep_rows, struct csv **out, struct eg_error *err);
// Writes one row of ncols cells and flushes it to the OS.
enum eg_status csv_row(struct csv *c, const char *const *cells, struct eg_error *err);
// Rows written so far, header excluded (reopen counts the kept ones).
size_t csv_rows(const struct csv *c);
// Closes; reports write errors (ferror/fclose). NULL-safe.
enum eg_status csv_close(struct csv *c, struct eg_error *err);

// Appends one row to path under an exclusive lock (flock), writing the header first when the
// file is new or empty; an existing header must equal columns (else an error naming the file).
// Concurrent appenders (shell loops, job arrays) each land a whole row.
enum eg_status csv_append_locked(const char *path, const char *const *columns,
                                 const char *const *cells, size_t ncols, struct eg_error *err);

// Formats v as %.9g into buf (at least 32 bytes); returns buf. NaN and Inf print as nan, inf.
char *csv_fmt(char *buf, double v);

#endif // EG_CSV_H
