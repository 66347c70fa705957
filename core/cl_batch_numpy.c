/*
 * cl_batch_numpy.c - the two numpy 1.24 behaviours that exact cleanlab
 * parity depends on: the float64 summation order of np.sum and the order
 * of equal keys in np.argsort (default kind, an introsort).
 *
 * Both follow the algorithms described in numpy's sources
 * (numpy/core/src/umath/loops_utils.h.src, pairwise_sum;
 * numpy/core/src/npysort/quicksort.cpp, aquicksort_ and aheapsort_);
 * docs/batch.md restates them.  Changing a comparison, the pivot choice or
 * a cut-over size changes which of several equal keys lands before a
 * cut-off, and with it cleanlab's flagged rows.
 */
#include "cl_batch.h"

#include <stdbool.h>
#include <stddef.h>

/* np.add.reduce feeds the inner loop at most this many values at once. */
#define SUM_BLOCK 8192
/* Below this many values the pairwise sum runs one accumulator. */
#define SUM_UNROLL 8
/* Up to this many values the pairwise sum runs eight accumulators. */
#define SUM_LEAF 128

/* Ranges of hi - lo <= SORT_SMALL (16 values) are insertion-sorted. */
#define SORT_SMALL 15
/* Ranges waiting on the stack: the larger part is pushed and the smaller
 * one sorted first, so at most log2(SIZE_MAX) ranges wait. */
#define SORT_STACK (sizeof(size_t) * 8)

static double pairwise_sum(const double *a, size_t n)
{
        double r[SUM_UNROLL], s;
        size_t i, j, h;

        if (n < SUM_UNROLL) {
                s = 0.0;
                for (i = 0; i < n; i++)
                        s += a[i];
                return s;
        }
        if (n <= SUM_LEAF) {
                for (j = 0; j < SUM_UNROLL; j++)
                        r[j] = a[j];
                for (i = SUM_UNROLL; i < n - n % SUM_UNROLL; i += SUM_UNROLL)
                        for (j = 0; j < SUM_UNROLL; j++)
                                r[j] += a[i + j];
                s = ((r[0] + r[1]) + (r[2] + r[3])) +
                    ((r[4] + r[5]) + (r[6] + r[7]));
                for (; i < n; i++)
                        s += a[i];
                return s;
        }
        h = n / 2;
        h -= h % SUM_UNROLL;
        return pairwise_sum(a, h) + pairwise_sum(a + h, n - h);
}

double cl_batch_sum(const double *v, size_t n)
{
        double total = 0.0;
        size_t done, len;

        for (done = 0; done < n; done += len) {
                len = n - done < SUM_BLOCK ? n - done : SUM_BLOCK;
                total += pairwise_sum(v + done, len);
        }
        return total;
}

/* numpy's float comparison: NaN sorts after every number. */
static bool key_less(double a, double b)
{
        return a < b || (b != b && a == a);
}

/* The sort order on positions a and b of v.  The stable mode breaks ties
 * by position, which makes the order total and any correct sort give the
 * same permutation. */
struct sort_ctx {
        const double *v;
        bool stable;
};

static bool before(const struct sort_ctx *c, size_t a, size_t b)
{
        if (key_less(c->v[a], c->v[b]))
                return true;
        if (!c->stable || key_less(c->v[b], c->v[a]))
                return false;
        return a < b;
}

static void swap_idx(size_t *idx, size_t a, size_t b)
{
        size_t t = idx[a];

        idx[a] = idx[b];
        idx[b] = t;
}

/* Moves x down from slot i of the 1-based heap h[1..m]. */
static void heap_sift(const struct sort_ctx *c, size_t *h, size_t i,
                      size_t m, size_t x)
{
        size_t j;

        for (j = 2 * i; j <= m;) {
                if (j < m && before(c, h[j], h[j + 1]))
                        j++;
                if (!before(c, x, h[j]))
                        break;
                h[i] = h[j];
                i = j;
                j *= 2;
        }
        h[i] = x;
}

static void heap_sort(const struct sort_ctx *c, size_t *idx, size_t n)
{
        size_t *h = idx - 1; /* 1-based view; h[0] is never touched */
        size_t l, m, x;

        for (l = n / 2; l > 0; l--)
                heap_sift(c, h, l, n, h[l]);
        for (m = n; m > 1;) {
                x = h[m];
                h[m] = h[1];
                m--;
                heap_sift(c, h, 1, m, x);
        }
}

static void insertion_sort(const struct sort_ctx *c, size_t *idx, size_t lo,
                           size_t hi)
{
        size_t p, q, x;

        for (p = lo + 1; p <= hi; p++) {
                x = idx[p];
                for (q = p; q > lo && before(c, x, idx[q - 1]); q--)
                        idx[q] = idx[q - 1];
                idx[q] = x;
        }
}

/* Median-of-three partition of idx[lo..hi] (hi - lo > SORT_SMALL); returns
 * the final position of the pivot. */
static size_t partition(const struct sort_ctx *c, size_t *idx, size_t lo,
                        size_t hi)
{
        size_t mid = lo + (hi - lo) / 2, pivot, i, j;

        if (before(c, idx[mid], idx[lo]))
                swap_idx(idx, mid, lo);
        if (before(c, idx[hi], idx[mid]))
                swap_idx(idx, hi, mid);
        if (before(c, idx[mid], idx[lo]))
                swap_idx(idx, mid, lo);
        pivot = idx[mid];
        swap_idx(idx, mid, hi - 1);
        i = lo;
        j = hi - 1;
        for (;;) {
                /* Sentinels: idx[lo] <= pivot and idx[hi - 1] is the
                 * pivot, so neither scan leaves [lo, hi - 1]. */
                do
                        i++;
                while (before(c, idx[i], pivot));
                do
                        j--;
                while (before(c, pivot, idx[j]));
                if (i >= j)
                        break;
                swap_idx(idx, i, j);
        }
        swap_idx(idx, i, hi - 1);
        return i;
}

static int floor_log2(size_t n)
{
        int r = 0;

        while (n >>= 1)
                r++;
        return r;
}

struct sort_range {
        size_t lo, hi;
        int depth;
};

void cl_batch_argsort(const double *v, size_t n, enum cl_batch_sort mode,
                      size_t *ret_idx)
{
        struct sort_ctx c = {v, mode == CL_BATCH_SORT_STABLE};
        struct sort_range stack[SORT_STACK];
        size_t top = 0, lo, hi, p;
        int depth;

        for (p = 0; p < n; p++)
                ret_idx[p] = p;
        if (n < 2)
                return;
        lo = 0;
        hi = n - 1;
        depth = 2 * floor_log2(n);
        for (;;) {
                if (depth < 0) {
                        /* Too many bad pivots: heapsort the range, as
                         * numpy does, instead of partitioning further. */
                        heap_sort(&c, ret_idx + lo, hi - lo + 1);
                } else {
                        while (hi - lo > SORT_SMALL) {
                                p = partition(&c, ret_idx, lo, hi);
                                depth--;
                                if (p - lo < hi - p) {
                                        stack[top++] = (struct sort_range){
                                                p + 1, hi, depth};
                                        hi = p - 1;
                                } else {
                                        stack[top++] = (struct sort_range){
                                                lo, p - 1, depth};
                                        lo = p + 1;
                                }
                        }
                        insertion_sort(&c, ret_idx, lo, hi);
                }
                if (top == 0)
                        return;
                top--;
                lo = stack[top].lo;
                hi = stack[top].hi;
                depth = stack[top].depth;
        }
}
