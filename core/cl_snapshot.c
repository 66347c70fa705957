/*
 * cl_snapshot.c - cl_state to msgpack and back (format in
 * docs/streaming.md, "Snapshot format").
 *
 * The snapshot holds the raw sums and the current weight exactly, so a
 * restored state decides bit for bit as the saved one.  Restore trusts no
 * size in the bytes: a walk over the raw bytes first proves that every
 * declared container fits in what remains of the buffer (msgpack_unpack()
 * would otherwise reserve memory for a declared element count before
 * reading a single element), then every field is checked for type, length
 * and range against the parameters it declares.
 */
#include "cl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cl_hist.h"
#include "cl_state.h"

#define SNAP_FORMAT "confidentd.cl_state"
#define SNAP_VERSION 2u

/* The fields of format version 2, in the order they are written. */
enum snap_field {
        SF_FORMAT,
        SF_VERSION,
        SF_K,
        SF_FILTER,
        SF_HALF_LIFE,
        SF_BINS,
        SF_WARMUP_TOTAL,
        SF_WARMUP_CLASS,
        SF_MIN_EXAMPLES,
        SF_SUM_TOL,
        SF_LOW_FINAL_FILTER,
        SF_WARMUP_POLICY,
        SF_DELAY_ITEMS,
        SF_CELLS,
        SF_ITEMS,
        SF_W,
        SF_TOTAL,
        SF_OFFDIAG,
        SF_CELL_COL,
        SF_CNT,
        SF_SC_SUM,
        SF_DIAG,
        SF_OFF,
        SF_CELL_CNT,
        SF_CELL_ERR,
        SF_CELL_MASS,
        SF_H_SC,
        SF_H_MG,
        SF_H_LOW,
        SF_COUNT
};

static const char *const field_names[SF_COUNT] = {
        [SF_FORMAT] = "format",
        [SF_VERSION] = "version",
        [SF_K] = "k",
        [SF_FILTER] = "filter",
        [SF_HALF_LIFE] = "half_life",
        [SF_BINS] = "bins",
        [SF_WARMUP_TOTAL] = "warmup_total",
        [SF_WARMUP_CLASS] = "warmup_class",
        [SF_MIN_EXAMPLES] = "min_examples",
        [SF_SUM_TOL] = "sum_tol",
        [SF_LOW_FINAL_FILTER] = "low_final_filter",
        [SF_CELLS] = "cells",
        [SF_WARMUP_POLICY] = "warmup_policy",
        [SF_DELAY_ITEMS] = "delay_items",
        [SF_ITEMS] = "items",
        [SF_W] = "w",
        [SF_TOTAL] = "total",
        [SF_OFFDIAG] = "offdiag",
        [SF_CELL_COL] = "cell_col",
        [SF_CNT] = "cnt",
        [SF_SC_SUM] = "sc_sum",
        [SF_DIAG] = "diag",
        [SF_OFF] = "off",
        [SF_CELL_CNT] = "cell_cnt",
        [SF_CELL_ERR] = "cell_err",
        [SF_CELL_MASS] = "cell_mass",
        [SF_H_SC] = "h_sc",
        [SF_H_MG] = "h_mg",
        [SF_H_LOW] = "h_low",
};

/* An array field of the state: where it lives and how long it is. */
struct snap_array {
        double *data;
        size_t len;
        bool may_be_negative; /* sc_sum: p >= -EPS, so sums may dip below 0 */
};

static struct snap_array snap_array(const struct cl_state *st,
                                    enum snap_field f)
{
        size_t k = st->p.k;

        switch (f) {
        case SF_CNT:
                return (struct snap_array){ st->cnt, k, false };
        case SF_SC_SUM:
                return (struct snap_array){ st->sc_sum, k, true };
        case SF_DIAG:
                return (struct snap_array){ st->diag, k, false };
        case SF_OFF:
                return (struct snap_array){ st->off, k, false };
        case SF_CELL_CNT:
                return (struct snap_array){ st->cell_cnt, st->n_cells, false };
        case SF_CELL_ERR:
                return (struct snap_array){ st->cell_err, st->n_cells, false };
        case SF_CELL_MASS:
                return (struct snap_array){ st->cell_mass, st->n_cells,
                                            false };
        case SF_H_SC:
                return (struct snap_array){ st->h_sc, st->n_sc, false };
        case SF_H_MG:
                return (struct snap_array){ st->h_mg, st->n_mg, false };
        case SF_H_LOW:
                return (struct snap_array){ st->h_low, st->n_low, false };
        default:
                return (struct snap_array){ NULL, 0, false };
        }
}

/* ---- writing ---- */

/* A packer whose first failure sticks, so the writer checks once. */
struct writer {
        msgpack_packer pk;
        int failed;
};

static void put_str(struct writer *w, const char *s)
{
        size_t n = strlen(s);

        if (!w->failed)
                w->failed = msgpack_pack_str(&w->pk, n) ||
                            msgpack_pack_str_body(&w->pk, s, n);
}

static void put_uint(struct writer *w, const char *key, uint64_t v)
{
        put_str(w, key);
        if (!w->failed)
                w->failed = msgpack_pack_uint64(&w->pk, v);
}

static void put_double(struct writer *w, const char *key, double v)
{
        put_str(w, key);
        if (!w->failed)
                w->failed = msgpack_pack_double(&w->pk, v);
}

static void put_array(struct writer *w, const char *key, const double *v,
                      size_t n)
{
        put_str(w, key);
        if (!w->failed)
                w->failed = msgpack_pack_array(&w->pk, n);
        for (size_t x = 0; x < n && !w->failed; x++)
                w->failed = msgpack_pack_double(&w->pk, v[x]);
}

static void put_params(struct writer *w, const struct cl_params *p)
{
        put_uint(w, field_names[SF_K], p->k);
        put_str(w, field_names[SF_FILTER]);
        put_str(w, cl_filter_name(p->filter));
        put_double(w, field_names[SF_HALF_LIFE], p->half_life);
        put_uint(w, field_names[SF_BINS], p->bins);
        put_double(w, field_names[SF_WARMUP_TOTAL], p->warmup_total);
        put_double(w, field_names[SF_WARMUP_CLASS], p->warmup_class);
        put_double(w, field_names[SF_MIN_EXAMPLES], p->min_examples);
        put_double(w, field_names[SF_SUM_TOL], p->sum_tol);
        put_str(w, field_names[SF_LOW_FINAL_FILTER]);
        if (!w->failed)
                w->failed = p->low_final_filter ? msgpack_pack_true(&w->pk)
                                                : msgpack_pack_false(&w->pk);
        put_str(w, field_names[SF_WARMUP_POLICY]);
        put_str(w, cl_warmup_policy_name(p->warmup_policy));
        put_uint(w, field_names[SF_DELAY_ITEMS], p->delay_items);
        put_uint(w, field_names[SF_CELLS], p->cells);
}

static void put_cols(struct writer *w, const uint32_t *v, size_t n)
{
        put_str(w, field_names[SF_CELL_COL]);
        if (!w->failed)
                w->failed = msgpack_pack_array(&w->pk, n);
        for (size_t x = 0; x < n && !w->failed; x++)
                w->failed = msgpack_pack_uint32(&w->pk, v[x]);
}

int cl_state_snapshot(const struct cl_state *st, char **ret_buf,
                      size_t *ret_len)
{
        msgpack_sbuffer sbuf;
        struct writer w = { .failed = 0 };

        /* A snapshot carries no hold buffer (cl.h). */
        if (cl_state_held(st) > 0)
                return CL_E_HELD;
        msgpack_sbuffer_init(&sbuf);
        msgpack_packer_init(&w.pk, &sbuf, msgpack_sbuffer_write);

        w.failed = msgpack_pack_map(&w.pk, SF_COUNT);
        put_str(&w, field_names[SF_FORMAT]);
        put_str(&w, SNAP_FORMAT);
        put_uint(&w, field_names[SF_VERSION], SNAP_VERSION);
        put_params(&w, &st->p);
        put_uint(&w, field_names[SF_ITEMS], st->items);
        put_double(&w, field_names[SF_W], st->w);
        put_double(&w, field_names[SF_TOTAL], *st->total);
        put_double(&w, field_names[SF_OFFDIAG], *st->offdiag);
        put_cols(&w, st->cell_col, st->n_cells);
        for (int f = SF_CNT; f <= SF_H_LOW; f++) {
                struct snap_array a = snap_array(st, (enum snap_field)f);

                put_array(&w, field_names[f], a.data, a.len);
        }
        if (w.failed) {
                msgpack_sbuffer_destroy(&sbuf);
                return CL_E_NOMEM;
        }
        *ret_len = sbuf.size;
        *ret_buf = msgpack_sbuffer_release(&sbuf);
        return 0;
}

/* ---- reading ---- */

/* Big-endian unsigned of n (1, 2 or 4) bytes. */
static size_t read_be(const unsigned char *p, unsigned n)
{
        size_t v = 0;

        for (unsigned x = 0; x < n; x++)
                v = v << 8 | p[x];
        return v;
}

/*
 * Length of the fixed part of a msgpack header and what follows it:
 * *ret_body bytes of payload, *ret_items nested objects.  Returns 0, or -1
 * for the unused byte 0xc1 or a header cut short.
 */
static int mp_header(const unsigned char *p, size_t avail, size_t *ret_head,
                     size_t *ret_body, size_t *ret_items)
{
        /* Fixed payload of 0xc0..0xdf; -1: variable, see below. */
        static const signed char fixed[32] = {
                0, -1, 0, 0,  -1, -1, -1, -1, -1, -1, 4, 8, 1, 2, 4, 8,
                1, 2,  4, 8,  2,  3,  5,  9,  17, -1, -1, -1, -1, -1, -1, -1,
        };
        unsigned char c = p[0];
        unsigned lenb;

        *ret_head = 1;
        *ret_body = 0;
        *ret_items = 0;
        if (c <= 0x7f || c >= 0xe0)
                return 0;
        if (c <= 0x8f) {
                *ret_items = 2u * (c & 0x0fu);
                return 0;
        }
        if (c <= 0x9f) {
                *ret_items = c & 0x0fu;
                return 0;
        }
        if (c <= 0xbf) {
                *ret_body = c & 0x1fu;
                return 0;
        }
        if (c == 0xc1)
                return -1;
        if (fixed[c - 0xc0] >= 0) {
                *ret_body = (size_t)fixed[c - 0xc0];
                return 0;
        }
        /* bin/str 8,16,32; ext 8,16,32 (+1 type byte); array/map 16,32 */
        if (c == 0xc4 || c == 0xc7 || c == 0xd9)
                lenb = 1;
        else if (c == 0xc5 || c == 0xc8 || c == 0xda || c == 0xdc ||
                 c == 0xde)
                lenb = 2;
        else
                lenb = 4;
        if (avail < 1 + lenb)
                return -1;
        *ret_head = 1 + lenb;
        if (c == 0xdc || c == 0xdd)
                *ret_items = read_be(p + 1, lenb);
        else if (c == 0xde || c == 0xdf)
                *ret_items = 2 * read_be(p + 1, lenb);
        else
                *ret_body = read_be(p + 1, lenb) + (c >= 0xc7 && c <= 0xc9);
        return 0;
}

/*
 * Proves that buf is exactly one msgpack object whose containers declare
 * no more elements than there are bytes left (each element takes at least
 * one).  Iterative: `pending` counts objects still to read, so nesting
 * depth costs nothing here.  Returns 0 or -1.
 */
static int mp_walk(const unsigned char *buf, size_t len)
{
        size_t off = 0, pending = 1;

        while (pending > 0) {
                size_t head, body, items;

                if (off >= len ||
                    mp_header(buf + off, len - off, &head, &body, &items))
                        return -1;
                off += head;
                if (body > len - off)
                        return -1;
                off += body;
                pending--;
                if (items > len - off || pending > len - off - items)
                        return -1;
                pending += items;
        }
        return off == len ? 0 : -1;
}

static bool key_is(const msgpack_object *o, const char *name)
{
        size_t n = strlen(name);

        return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
               memcmp(o->via.str.ptr, name, n) == 0;
}

/* Sorts the top-level map entries into slots by name.  A repeated key is
 * an error; an unknown one only sets *ret_unknown, so that a newer format
 * is reported as CL_E_VERSION rather than CL_E_SNAPSHOT. */
static int collect_fields(const msgpack_object *root,
                          const msgpack_object *slots[SF_COUNT],
                          bool *ret_unknown)
{
        if (root->type != MSGPACK_OBJECT_MAP)
                return CL_E_SNAPSHOT;
        for (uint32_t e = 0; e < root->via.map.size; e++) {
                const msgpack_object_kv *kv = &root->via.map.ptr[e];
                int f = 0;

                while (f < SF_COUNT && !key_is(&kv->key, field_names[f]))
                        f++;
                if (f == SF_COUNT) {
                        *ret_unknown = true;
                        continue;
                }
                if (slots[f])
                        return CL_E_SNAPSHOT;
                slots[f] = &kv->val;
        }
        return 0;
}

static int get_uint(const msgpack_object *o, uint64_t max, uint64_t *ret)
{
        if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            o->via.u64 > max)
                return CL_E_SNAPSHOT;
        *ret = o->via.u64;
        return 0;
}

static int get_double(const msgpack_object *o, double *ret)
{
        if (!o || (o->type != MSGPACK_OBJECT_FLOAT64 &&
                   o->type != MSGPACK_OBJECT_FLOAT32))
                return CL_E_SNAPSHOT;
        if (!isfinite(o->via.f64))
                return CL_E_SNAPSHOT;
        *ret = o->via.f64;
        return 0;
}

static int check_format(const msgpack_object *const slots[SF_COUNT])
{
        uint64_t version;

        if (!slots[SF_FORMAT] || !key_is(slots[SF_FORMAT], SNAP_FORMAT))
                return CL_E_SNAPSHOT;
        if (get_uint(slots[SF_VERSION], UINT64_MAX, &version) < 0)
                return CL_E_SNAPSHOT;
        return version == SNAP_VERSION ? 0 : CL_E_VERSION;
}

static int get_filter(const msgpack_object *o, enum cl_filter *ret)
{
        char name[32];

        if (!o || o->type != MSGPACK_OBJECT_STR ||
            o->via.str.size >= sizeof(name))
                return CL_E_SNAPSHOT;
        memcpy(name, o->via.str.ptr, o->via.str.size);
        name[o->via.str.size] = '\0';
        return cl_filter_parse(name, ret) < 0 ? CL_E_SNAPSHOT : 0;
}

/* warmup_policy; absent in snapshots written before the key existed,
 * when every state passed its warm-up items. */
static int get_policy(const msgpack_object *o, enum cl_warmup_policy *ret)
{
        char name[8];

        if (!o) {
                *ret = CL_WARMUP_PASS;
                return 0;
        }
        if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= sizeof(name))
                return CL_E_SNAPSHOT;
        memcpy(name, o->via.str.ptr, o->via.str.size);
        name[o->via.str.size] = '\0';
        return cl_warmup_policy_parse(name, ret) < 0 ? CL_E_SNAPSHOT : 0;
}

/* delay_items; absent in snapshots written before the key existed,
 * when no state had a decision window. */
static int get_delay(const msgpack_object *o, unsigned *ret)
{
        uint64_t v = 0;

        if (o && get_uint(o, UINT32_MAX, &v) < 0)
                return CL_E_SNAPSHOT;
        *ret = (unsigned)v;
        return 0;
}

static int get_params(const msgpack_object *const slots[SF_COUNT],
                      struct cl_params *p)
{
        const msgpack_object *lff = slots[SF_LOW_FINAL_FILTER];
        uint64_t k, bins, cells;

        if (get_uint(slots[SF_K], CL_K_MAX, &k) < 0 ||
            get_uint(slots[SF_BINS], CL_BINS_MAX, &bins) < 0 ||
            get_uint(slots[SF_CELLS], UINT32_MAX, &cells) < 0 ||
            get_filter(slots[SF_FILTER], &p->filter) < 0 ||
            get_double(slots[SF_HALF_LIFE], &p->half_life) < 0 ||
            get_double(slots[SF_WARMUP_TOTAL], &p->warmup_total) < 0 ||
            get_double(slots[SF_WARMUP_CLASS], &p->warmup_class) < 0 ||
            get_double(slots[SF_MIN_EXAMPLES], &p->min_examples) < 0 ||
            get_double(slots[SF_SUM_TOL], &p->sum_tol) < 0 ||
            get_policy(slots[SF_WARMUP_POLICY], &p->warmup_policy) < 0 ||
            get_delay(slots[SF_DELAY_ITEMS], &p->delay_items) < 0)
                return CL_E_SNAPSHOT;
        if (!lff || lff->type != MSGPACK_OBJECT_BOOLEAN)
                return CL_E_SNAPSHOT;
        p->k = (unsigned)k;
        p->bins = (unsigned)bins;
        p->cells = (unsigned)cells;
        p->low_final_filter = lff->via.boolean;
        return cl_params_check(p) < 0 ? CL_E_SNAPSHOT : 0;
}

static int get_array(const msgpack_object *o, struct snap_array a)
{
        if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != a.len)
                return CL_E_SNAPSHOT;
        for (size_t x = 0; x < a.len; x++) {
                double v;

                if (get_double(&o->via.array.ptr[x], &v) < 0)
                        return CL_E_SNAPSHOT;
                if (v < 0.0 && !a.may_be_negative)
                        return CL_E_SNAPSHOT;
                a.data[x] = v;
        }
        return 0;
}

/* Every histogram tree of the state passes cl_hist_consistent(). */
static bool trees_consistent(const struct cl_state *st)
{
        const struct cl_hist_shape *sh = &st->shape;
        /* Renormalisation flushes up to a group of children to 0. */
        double slack = CL_HIST_FAN * CL_FLUSH_BELOW;
        size_t n = st->n_sc + st->n_mg + st->n_low;
        const double *tree = st->h_sc ? st->h_sc
                             : st->h_mg ? st->h_mg
                                        : st->h_low;

        /* The three histograms are adjacent in the block (cl_state.h). */
        for (size_t t = 0; t < n / sh->nodes; t++)
                if (!cl_hist_consistent(tree + t * sh->nodes, sh, slack))
                        return false;
        return true;
}

/*
 * Reads the cell columns and checks the cells against them: an exact
 * state's columns are fixed; a pooled class keeps each column j != i at
 * most once, and K marks an unused cell, which holds nothing.  Every
 * cell has 0 <= cell_err <= cell_cnt, and cell_err = 0 when exact.
 */
static int get_cells(const msgpack_object *o, struct cl_state *st)
{
        unsigned k = st->p.k;

        if (!o || o->type != MSGPACK_OBJECT_ARRAY ||
            o->via.array.size != st->n_cells)
                return CL_E_SNAPSHOT;
        for (size_t c = 0; c < st->n_cells; c++) {
                uint64_t j;
                unsigned i = (unsigned)(c / st->cells);

                if (get_uint(&o->via.array.ptr[c], k, &j) < 0 || j == i)
                        return CL_E_SNAPSHOT;
                if (st->exact) {
                        if (j != cl_exact_col(i, (unsigned)(c % st->cells)))
                                return CL_E_SNAPSHOT;
                } else if (j < k &&
                           cl_cell_find(st, i, (unsigned)j) != SIZE_MAX) {
                        return CL_E_SNAPSHOT;
                }
                st->cell_col[c] = (uint32_t)j;
        }
        return 0;
}

static bool cells_consistent(const struct cl_state *st)
{
        for (size_t c = 0; c < st->n_cells; c++) {
                if (!(st->cell_err[c] <= st->cell_cnt[c]) ||
                    (st->exact && st->cell_err[c] != 0.0))
                        return false;
                if (st->cell_col[c] == st->p.k &&
                    (st->cell_cnt[c] != 0.0 || st->cell_mass[c] != 0.0))
                        return false;
        }
        return true;
}

/* Fills a fresh state from the slots; its parameters are already set. */
static int get_sums(const msgpack_object *const slots[SF_COUNT],
                    struct cl_state *st)
{
        if (get_uint(slots[SF_ITEMS], UINT64_MAX, &st->items) < 0 ||
            get_double(slots[SF_W], &st->w) < 0 ||
            get_double(slots[SF_TOTAL], st->total) < 0 ||
            get_double(slots[SF_OFFDIAG], st->offdiag) < 0)
                return CL_E_SNAPSHOT;
        /* A live state keeps 1 <= w <= CL_RENORM_AT, and w = 1 without
         * decay. */
        if (st->w < 1.0 || st->w > CL_RENORM_AT ||
            (st->growth == 1.0 && st->w != 1.0))
                return CL_E_SNAPSHOT;
        if (*st->total < 0.0 || *st->offdiag < 0.0)
                return CL_E_SNAPSHOT;
        /* A fresh state's columns are all unused (or fixed when exact),
         * so get_cells() finds each column only once it has read it. */
        memset(st->cell_col, 0xff, st->n_cells * sizeof(*st->cell_col));
        if (get_cells(slots[SF_CELL_COL], st) < 0)
                return CL_E_SNAPSHOT;
        for (int f = SF_CNT; f <= SF_H_LOW; f++)
                if (get_array(slots[f], snap_array(st, (enum snap_field)f)))
                        return CL_E_SNAPSHOT;
        if (!cells_consistent(st) || !trees_consistent(st))
                return CL_E_SNAPSHOT;
        cl_state_refresh(st);
        return 0;
}

/* Builds the state from an unpacked, structurally sound object tree. */
static int restore_object(const msgpack_object *root,
                          struct cl_state **ret_state)
{
        const msgpack_object *slots[SF_COUNT] = { NULL };
        struct cl_params p;
        struct cl_state *st;
        bool unknown = false;
        int rc;

        rc = collect_fields(root, slots, &unknown);
        if (rc < 0)
                return rc;
        rc = check_format(slots);
        if (rc < 0)
                return rc;
        if (unknown)
                return CL_E_SNAPSHOT;

        cl_params_init(&p, 2);
        rc = get_params(slots, &p);
        if (rc < 0)
                return rc;
        rc = cl_state_new(&p, &st);
        if (rc < 0)
                return rc == CL_E_NOMEM ? rc : CL_E_SNAPSHOT;
        rc = get_sums(slots, st);
        if (rc < 0) {
                cl_state_free(st);
                return rc;
        }
        *ret_state = st;
        return 0;
}

int cl_state_restore(const char *buf, size_t len, struct cl_state **ret_state)
{
        msgpack_zone zone;
        msgpack_object root;
        size_t off = 0;
        int rc;

        if (!buf || mp_walk((const unsigned char *)buf, len) < 0)
                return CL_E_SNAPSHOT;
        if (!msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE))
                return CL_E_NOMEM;

        switch (msgpack_unpack(buf, len, &off, &zone, &root)) {
        case MSGPACK_UNPACK_SUCCESS:
                rc = restore_object(&root, ret_state);
                break;
        case MSGPACK_UNPACK_NOMEM_ERROR:
                rc = CL_E_NOMEM;
                break;
        default:
                rc = CL_E_SNAPSHOT;
                break;
        }
        msgpack_zone_destroy(&zone);
        return rc;
}
