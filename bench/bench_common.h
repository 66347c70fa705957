/*
 * bench_common.h - helpers shared by the benchmark programs: clocks, a
 * small RNG, generated rows and the peak resident set.  Header only; every
 * function is static inline, so each program takes what it uses.
 */
#ifndef CFD_BENCH_COMMON_H
#define CFD_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on a clock: CLOCK_MONOTONIC (wall) or CLOCK_THREAD_CPUTIME_ID
 * (this thread's CPU time, which a loaded machine does not inflate). */
static inline double bench_clock(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: state must not be 0. */
static inline uint64_t bench_rand(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

/* Uniform in [0, 1). */
static inline double bench_unit(uint64_t *s)
{
        return (double)(bench_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * Fills n rows of k probabilities (row r at probs[r * k]) and labels: a
 * true class t, a model that puts 60-95 % of the mass on t (on another
 * class in one row of five) and the rest spread at random, a given label
 * that differs from t in one row of ten.  Rows sum to 1.
 */
static inline void bench_rows(uint64_t seed, unsigned k, size_t n,
                              long *labels, double *probs)
{
        uint64_t s = seed ? seed : 1;

        for (size_t r = 0; r < n; r++) {
                double *p = &probs[r * k];
                unsigned t = (unsigned)(bench_rand(&s) % k);
                unsigned top = t;
                double sum = 0.0, peak = 0.6 + 0.35 * bench_unit(&s);

                if (bench_rand(&s) % 5 == 0)
                        top = (unsigned)(bench_rand(&s) % k);
                for (unsigned j = 0; j < k; j++) {
                        p[j] = bench_unit(&s);
                        p[j] *= p[j] * p[j];
                        sum += p[j];
                }
                for (unsigned j = 0; j < k; j++)
                        p[j] = p[j] / sum * (1.0 - peak);
                p[top] += peak;
                labels[r] = t;
                if (bench_rand(&s) % 10 == 0)
                        labels[r] = (long)(bench_rand(&s) % k);
        }
}

/* Peak resident set of this process in KiB (VmHWM), or -1. */
static inline long bench_peak_rss_kib(void)
{
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        long kib = -1;

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (!strncmp(line, "VmHWM:", 6)) {
                        kib = strtol(line + 6, NULL, 10);
                        break;
                }
        fclose(f);
        return kib;
}

#endif /* CFD_BENCH_COMMON_H */
