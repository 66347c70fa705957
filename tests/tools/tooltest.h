/*
 * tooltest.h - helpers for the tests of tools/ and confidentctl: a
 * scratch folder, running a command with its stdout captured, whole-file
 * reads.  Failures end the current cmocka test.
 */
#ifndef CFD_TESTS_TOOLS_TOOLTEST_H
#define CFD_TESTS_TOOLS_TOOLTEST_H

#include <stddef.h>

/* cmocka group setup / teardown: make and remove the scratch folder. */
int tooltest_make_scratch(void **state);
int tooltest_remove_scratch(void **state);

/* Path of name in the scratch folder, in buf. */
const char *tooltest_path(char *buf, size_t size, const char *name);

/* Writes len bytes of data to path. */
void tooltest_write(const char *path, const void *data, size_t len);

/* Reads the whole of path; free() the result.  Sets *ret_len if not NULL. */
char *tooltest_read(const char *path, size_t *ret_len);

/*
 * Runs fn(argc, argv) for the NULL-terminated argument list (argv[0] is
 * the subcommand name) with stdout going to the file stdout_path.
 * Returns fn's exit status.
 */
int tooltest_run(int (*fn)(int, char **), const char *stdout_path,
                const char *const *args);

#endif /* CFD_TESTS_TOOLS_TOOLTEST_H */
