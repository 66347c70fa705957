#include "batch_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfd_params.h"
#include "cfg.h"
#include "cl.h"

#define NAME "confidentctl batch"

static int load_params(const char *config_path, unsigned k,
                       struct cl_params *ret)
{
        struct cfg_error err;
        struct cfg *cfg = NULL;
        char msg[512];
        int rc = 2;

        if (cfg_load_file(config_path, &cfg, &err) < 0) {
                cfg_error_format(&err, msg, sizeof(msg));
                fprintf(stderr, NAME ": %s\n", msg);
                return 2;
        }
        if (cfd_params_from_cfg(cfg, ret, msg, sizeof(msg)) < 0)
                fprintf(stderr, NAME ": %s\n", msg);
        else if (ret->k != k)
                fprintf(stderr,
                        NAME ": %s has %u classes, the probabilities %u\n",
                        config_path, ret->k, k);
        else
                rc = 0;
        cfg_free(cfg);
        return rc;
}

/* Observes every row; returns the number rejected, or -1. */
static long feed(struct cl_state *st, const long *labels, const double *probs,
                 size_t n, unsigned k)
{
        size_t cap = cl_state_hold_capacity(st);
        struct cl_verdict *out = malloc((cap ? cap : 1) * sizeof(*out));
        long rejected = 0;

        if (!out)
                return -1;
        for (size_t r = 0; r < n; r++) {
                if (cl_observe(st, labels[r], probs + r * k, k, NULL, NULL) <
                    0)
                        rejected++;
                else if (cl_state_release_due(st))
                        cl_state_release(st, out, cap);
        }
        /* A snapshot holds nothing back: decide what is still held. */
        if (cl_state_release_force(st, out, cap) < 0)
                rejected = -1;
        free(out);
        return rejected;
}

static int write_file(const char *path, const char *buf, size_t len)
{
        FILE *fp = fopen(path, "wb");

        if (!fp || fwrite(buf, 1, len, fp) != len || fclose(fp) != 0) {
                fprintf(stderr, NAME ": %s: %s\n", path, strerror(errno));
                if (fp)
                        fclose(fp);
                return -1;
        }
        return 0;
}

int batch_state_write(const char *config_path, const char *out_path,
                      const long *labels, const double *probs, size_t n,
                      unsigned k)
{
        struct cl_params params;
        struct cl_state *st = NULL;
        char *snap = NULL;
        size_t len = 0;
        long rejected;
        int rc;

        rc = load_params(config_path, k, &params);
        if (rc)
                return rc;
        rc = cl_state_new(&params, &st);
        if (rc < 0) {
                fprintf(stderr, NAME ": state: %s\n", cl_strerror(rc));
                return 1;
        }
        rejected = feed(st, labels, probs, n, k);
        rc = rejected < 0 ? CL_E_NOMEM : cl_state_snapshot(st, &snap, &len);
        if (rc == 0)
                rc = write_file(out_path, snap, len) < 0 ? -1 : 0;
        else
                fprintf(stderr, NAME ": snapshot: %s\n", cl_strerror(rc));
        if (rc == 0)
                fprintf(stderr,
                        NAME ": state of %" PRIu64 " items (%ld rejected) "
                             "written to %s, %zu bytes\n",
                        cl_state_items(st), rejected, out_path, len);
        free(snap);
        cl_state_free(st);
        return rc == 0 ? 0 : 1;
}
