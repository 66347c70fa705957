/*
 * rng.h - a small seeded random number generator for the tools:
 * xoshiro256** (Blackman, Vigna 2018) seeded through splitmix64.  The
 * integer stream depends on nothing but the seed, so a seed gives the
 * same numbers on every machine.  All state is in struct rng.
 */
#ifndef CFD_TOOLS_RNG_H
#define CFD_TOOLS_RNG_H

#include <stdint.h>

struct rng {
        uint64_t s[4];
};

/*
 * Seeds r for (seed, stream).  Different streams of one seed are
 * independent sequences, so a program can draw, say, labels and model
 * outputs from separate streams and change one without moving the other.
 */
void rng_init(struct rng *r, uint64_t seed, uint64_t stream);

/* Next 64 random bits. */
uint64_t rng_next(struct rng *r);

/* Uniform double in [0, 1), with 53 random bits. */
double rng_uniform(struct rng *r);

/* Uniform integer in [0, n), without modulo bias; n must be > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

/*
 * Standard normal deviate (Marsaglia's polar method).  Uses log() and
 * sqrt(); sqrt() is exact in IEEE arithmetic, log() is not required to be
 * correctly rounded, so another C library may differ in the last bit.
 */
double rng_normal(struct rng *r);

#endif /* CFD_TOOLS_RNG_H */
