/*
 * tooltest.c - helpers for the tests of tools/ and confidentctl.
 */
#include "tooltest.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_ARGS 64

static char scratch[64];

int tooltest_make_scratch(void **state)
{
        (void)state;
        snprintf(scratch, sizeof(scratch), "scratch.XXXXXX");
        return mkdtemp(scratch) == NULL ? -1 : 0;
}

int tooltest_remove_scratch(void **state)
{
        struct dirent *e;
        char path[512];
        DIR *d;

        (void)state;
        d = opendir(scratch);
        if (d == NULL)
                return -1;
        while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 ||
                    strcmp(e->d_name, "..") == 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", scratch, e->d_name);
                remove(path);
        }
        closedir(d);
        return rmdir(scratch);
}

const char *tooltest_path(char *buf, size_t size, const char *name)
{
        snprintf(buf, size, "%s/%s", scratch, name);
        return buf;
}

void tooltest_write(const char *path, const void *data, size_t len)
{
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

char *tooltest_read(const char *path, size_t *ret_len)
{
        struct stat st;
        char *buf;
        FILE *f;

        f = fopen(path, "rb");
        if (f == NULL)
                fail_msg("cannot open %s", path);
        assert_int_equal(fstat(fileno(f), &st), 0);
        buf = malloc((size_t)st.st_size + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)st.st_size, f),
                         (size_t)st.st_size);
        fclose(f);
        buf[st.st_size] = '\0';
        if (ret_len != NULL)
                *ret_len = (size_t)st.st_size;
        return buf;
}

int tooltest_run(int (*fn)(int, char **), const char *stdout_path,
                const char *const *args)
{
        char *argv[MAX_ARGS + 1];
        int argc = 0, saved, fd, rc;

        while (args[argc] != NULL) {
                assert_true(argc < MAX_ARGS);
                argv[argc] = (char *)args[argc];
                argc++;
        }
        argv[argc] = NULL;
        fflush(stdout);
        saved = dup(STDOUT_FILENO);
        fd = open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(saved >= 0 && fd >= 0);
        assert_true(dup2(fd, STDOUT_FILENO) >= 0);
        close(fd);
        rc = fn(argc, argv);
        fflush(stdout);
        assert_true(dup2(saved, STDOUT_FILENO) >= 0);
        close(saved);
        return rc;
}
