/* csv.h - result files. A CSV file is written one row at a time and flushed after every row, so
 * a killed run keeps every finished row. Floats are formatted %.9g (round-trips float32), and
 * setlocale is never called, so the decimal point is '.'. Cells are any text, written per
 * RFC 4180: a cell holding a ',', a '"', a CR or an LF is written inside double quotes with each
 * inner '"' doubled (the cell  a,b  is written  "a,b"  and  say "hi"  as  "say ""hi"""); every
 * other cell is written as it is, so files of plain cells are the same bytes as before. Rows
 * end with '\n' (never CRLF). Where a file is read back (csv_reopen, csv_append_locked), rows
 * are counted as records, following the quotes: a quoted line break ends no row. */
#ifndef EG_CSV_H
#define EG_CSV_H

#include <stddef.h>

#include "core/status.h"

struct csv; // an open CSV file (opaque)

// Creates (truncates) path and writes the header row. *out set on success.
enum eg_status csv_create(const char *path, const char *const *columns, size_t ncols,
                          struct csv **out, struct eg_error *err);
// Re-opens a CSV written by csv_create for a resumed run: checks that its header is exactly
// columns (a file that is only the header without its final '\n' is accepted, and the '\n'
// added), keeps its first keep_rows data rows, drops the rest (rows written after the
// checkpoint the run resumes from, and a last row cut off without its '\n', which is never
// counted), and appends after them. Each kept row must have ncols cells. Errors name the file
// (and the line, for a bad row or broken quoting); the file is unchanged on error.
enum eg_status csv_reopen(const char *path, const char *const *columns, size_t ncols,
                          size_t keep_rows, struct csv **out, struct eg_error *err);
// Writes one row of ncols cells and flushes it to the OS.
enum eg_status csv_row(struct csv *c, const char *const *cells, struct eg_error *err);
// Rows written so far, header excluded (reopen counts the kept ones).
size_t csv_rows(const struct csv *c);
// Closes; reports write errors (ferror/fclose). NULL-safe.
enum eg_status csv_close(struct csv *c, struct eg_error *err);

// Appends one row to path under an exclusive lock (flock), writing the header first when the
// file is new or empty; an existing header must equal columns (else an error naming the file and
// showing both headers from the first column that differs). Concurrent appenders (shell loops,
// job arrays) each land a whole row: the record (with the header, if due) goes out in one
// write(). Under the lock, before writing:
//   - a file that is only the header without its final '\n' gets the '\n';
//   - a last row without its '\n' (cut off by a crash or a full disk in an older version) is
//     never a complete record, so it is dropped: the file is cut back to the end of its last
//     whole record. A last line with more cells than ncols is not such a row: that is an error
//     and the file is left alone, as it is for quoting that is not RFC 4180.
// If the write or the fsync fails (disk full, file size limit), the file is cut back to its size
// before the write (a cut-off row dropped above stays dropped), so it never keeps a partial row;
// the error names the file and the cause.
// A path that is not a regular file (/dev/null) just gets the header and the row, unchecked.
enum eg_status csv_append_locked(const char *path, const char *const *columns,
                                 const char *const *cells, size_t ncols, struct eg_error *err);

// Whether the file at path, if it exists and is not empty, starts with the header of columns
// (the check csv_append_locked makes under its lock, without the lock and without writing): a
// caller can refuse early what the append at the end would refuse. EG_OK also when the file is
// missing or empty; EG_ERR_FORMAT (naming the first column that differs) or EG_ERR_IO otherwise.
enum eg_status csv_check_header(const char *path, const char *const *columns, size_t ncols,
                                struct eg_error *err);

// Formats cells[0..n) as one record: the cells (quoted where needed, as above) joined by ',' and
// a final '\n'. Returns a new string (caller frees) and its length in *len. EG_ASSERTs n >= 1
// and that no cell is NULL.
char *csv_record(const char *const *cells, size_t n, size_t *len);

// Formats v as %.9g into buf (at least 32 bytes); returns buf. NaN and Inf print as nan, inf.
char *csv_fmt(char *buf, double v);

#endif // EG_CSV_H
