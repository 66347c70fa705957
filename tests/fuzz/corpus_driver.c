/*
 * corpus_driver.c - runs a libFuzzer target over files without libFuzzer:
 * each argument is a file or a directory of files, each file one input.
 * Used where the compiler has no -fsanitize=fuzzer (gcc, the default), so
 * that the seed corpus and every saved crash reproducer run as a CTest.
 * Exits 1 when an argument cannot be read or no input was found.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file into a malloc()ed buffer; 0, or -1 with errno. */
static int read_file(const char *path, uint8_t **ret_buf, size_t *ret_len)
{
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        FILE *fp = fopen(path, "rb");

        if (!fp)
                return -1;
        for (;;) {
                size_t got;

                if (len == cap) {
                        uint8_t *grown = realloc(buf, cap ? 2 * cap : 4096);

                        if (!grown)
                                goto out_fail;
                        buf = grown;
                        cap = cap ? 2 * cap : 4096;
                }
                got = fread(buf + len, 1, cap - len, fp);
                len += got;
                if (got == 0)
                        break;
        }
        if (ferror(fp))
                goto out_fail;
        fclose(fp);
        *ret_buf = buf;
        *ret_len = len;
        return 0;

out_fail:
        free(buf);
        fclose(fp);
        if (errno == 0)
                errno = EIO;
        return -1;
}

static int run_file(const char *path)
{
        uint8_t *buf;
        size_t len;

        if (read_file(path, &buf, &len) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        /* An exact-size copy, so that ASan sees a read past the end. */
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        return 0;
}

/* Runs every regular file in dir; returns how many, or -1. */
static long run_dir(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        long n = 0;

        if (!d) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -1;
        }
        while ((de = readdir(d)) != NULL) {
                char path[4096];
                struct stat st;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (run_file(path) < 0) {
                        closedir(d);
                        return -1;
                }
                n++;
        }
        closedir(d);
        return n;
}

int main(int argc, char **argv)
{
        long total = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                long n;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                n = S_ISDIR(st.st_mode) ? run_dir(argv[i])
                                        : run_file(argv[i]) == 0 ? 1 : -1;
                if (n < 0)
                        return 1;
                total += n;
        }
        if (total == 0) {
                fprintf(stderr, "usage: %s FILE|DIR...: no input found\n",
                        argv[0]);
                return 1;
        }
        printf("%ld passed, 0 failed\n", total);
        return 0;
}
