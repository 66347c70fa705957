/*
 * csvread.h - a small reader for the data CSV files: one header line,
 * ',' separator, '\n' or "\r\n" line ends, optional double-quoted fields
 * (RFC 4180).  Reads one record at a time; errors name file and line.
 */
#ifndef CFD_TOOLS_CSVREAD_H
#define CFD_TOOLS_CSVREAD_H

#include <stddef.h>
#include <stdio.h>

struct csv_reader;

/* Opens path and reads its header.  Returns NULL with errbuf filled. */
struct csv_reader *csv_open(const char *path, char *errbuf, size_t errsize);
void csv_close(struct csv_reader *r);

/* Column index of a header name, or -1. */
int csv_column(const struct csv_reader *r, const char *name);
size_t csv_columns(const struct csv_reader *r);

/*
 * Reads the next record.  Returns 1 with fields available through
 * csv_field(), 0 at end of file, -1 on error (errbuf: "file:line: msg",
 * e.g. a record with a different number of fields than the header).
 */
int csv_next(struct csv_reader *r, char *errbuf, size_t errsize);

/* Field i of the current record, NUL-terminated; valid until csv_next(). */
const char *csv_field(const struct csv_reader *r, size_t i);

/* 1-based line number of the current record. */
size_t csv_line(const struct csv_reader *r);

/* Parses a whole field as a signed integer / double.  Returns 0 or -1. */
int csv_parse_i64(const char *s, long long *ret);
int csv_parse_f64(const char *s, double *ret);

#endif /* CFD_TOOLS_CSVREAD_H */
