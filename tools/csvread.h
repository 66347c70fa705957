/*
 * csvread.h - a small reader for the data CSV files: one header line,
 * ',' separator, '\n' or "\r\n" line ends, optional double-quoted fields
 * (RFC 4180; a quoted field may hold ',', '"' written as "" and line
 * ends).  A UTF-8 byte order mark before the header is skipped, and so are
 * empty lines.  Reads one record at a time; errors name file and line.
 */
#ifndef CFD_TOOLS_CSVREAD_H
#define CFD_TOOLS_CSVREAD_H

#include <stddef.h>
#include <stdio.h>

struct csv_reader;

/*
 * Opens path and reads its header.  Returns NULL with errbuf filled
 * ("file: No such file or directory", "file:1: duplicate column 'id'").
 * Close with csv_close().
 */
struct csv_reader *csv_open(const char *path, char *errbuf, size_t errsize);

/* Closes the file and frees the reader; NULL does nothing. */
void csv_close(struct csv_reader *r);

/* Column index of a header name, or -1. */
int csv_column(const struct csv_reader *r, const char *name);

/* Number of columns in the header; every record has as many fields. */
size_t csv_columns(const struct csv_reader *r);

/*
 * Reads the next record.  Returns 1 with fields available through
 * csv_field(), 0 at end of file, -1 on error (errbuf: "file:line: msg",
 * e.g. a record with a different number of fields than the header; the
 * line is where the record starts).  After an error every further call
 * fails with the same message.
 */
int csv_next(struct csv_reader *r, char *errbuf, size_t errsize);

/* Field i of the current record, NUL-terminated; valid until csv_next().
 * NULL when i >= csv_columns() or no record is current. */
const char *csv_field(const struct csv_reader *r, size_t i);

/* 1-based line number of the current record. */
size_t csv_line(const struct csv_reader *r);

/* Parses a whole field as a signed integer / double: no blanks, nothing
 * after the number, no overflow.  Returns 0 and sets *ret, or -1. */
int csv_parse_i64(const char *s, long long *ret);
int csv_parse_f64(const char *s, double *ret);

#endif /* CFD_TOOLS_CSVREAD_H */
