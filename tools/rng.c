/*
 * rng.c - xoshiro256** and splitmix64, after the public-domain reference
 * code at prng.di.unimi.it.
 */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
        uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
        return (x << k) | (x >> (64 - k));
}

void rng_init(struct rng *r, uint64_t seed, uint64_t stream)
{
        uint64_t x = seed;
        uint64_t mix = stream;
        int i;

        /* Hash the stream number first so that streams 0, 1, 2 ... start
         * far apart in splitmix64's sequence, not one step apart. */
        x ^= splitmix64(&mix);
        for (i = 0; i < 4; i++)
                r->s[i] = splitmix64(&x);
        /* splitmix64 is a bijection of its counter, but an all-zero state
         * would make xoshiro emit zeros forever; guard anyway. */
        if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
                r->s[0] = 1;
}

uint64_t rng_next(struct rng *r)
{
        uint64_t *s = r->s;
        uint64_t result = rotl(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
}

double rng_uniform(struct rng *r)
{
        return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
        /* Reject the top partial block of 2^64 mod n values. */
        uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t x;

        do
                x = rng_next(r);
        while (x >= limit);
        return x % n;
}

double rng_normal(struct rng *r)
{
        double u, v, s;

        do {
                u = 2.0 * rng_uniform(r) - 1.0;
                v = 2.0 * rng_uniform(r) - 1.0;
                s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        /* The polar method yields two deviates; keeping one keeps the
         * state small and the sequence simple to reason about. */
        return u * sqrt(-2.0 * log(s) / s);
}
