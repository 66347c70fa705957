/*
 * npy.h - reading NumPy .npy files (format versions 1.0 to 3.0) of
 * little-endian float32, float64 or integer arrays, C order, 1-D or 2-D.
 */
#ifndef CFD_TOOLS_NPY_H
#define CFD_TOOLS_NPY_H

#include <stddef.h>

enum npy_dtype {
        NPY_F4 = 0, /* '<f4' */
        NPY_F8,     /* '<f8' */
        NPY_I8,     /* '<i8' */
        NPY_I4,     /* '<i4' */
        NPY_U2,     /* '<u2' */
        NPY_U8,     /* '<u8' */
};

/* A whole array in memory.  Free with npy_array_free(). */
struct npy_array {
        enum npy_dtype dtype;
        size_t rows;  /* shape[0] */
        size_t cols;  /* shape[1], or 1 for a 1-D array */
        int ndim;     /* 1 or 2 */
        void *data;   /* rows * cols items of dtype, C order */
};

/*
 * Reads path into *ret (free with npy_array_free()).  Returns 0, or -1
 * with a message naming the file and the problem in errbuf, with the byte
 * offset for header errors ("x.npy: header at byte 20: unsupported dtype
 * '>f8'").  The file must hold exactly the data the shape announces.
 */
int npy_load(const char *path, struct npy_array *ret, char *errbuf,
             size_t errsize);

/* Element (r, c) widened to double; r < rows, c < cols (c = 0 for 1-D).
 * int64 and uint64 values beyond 2^53 lose precision. */
double npy_get(const struct npy_array *a, size_t r, size_t c);

/* Frees a's data and zeroes its shape; NULL does nothing. */
void npy_array_free(struct npy_array *a);

/*
 * Writes a 2-D float64 array (rows x cols, C order) or, with cols == 0, a
 * 1-D array of rows values, in format 1.0 as numpy.save() does.  Returns 0
 * or -1 with errbuf filled; a partly written file is removed.
 */
int npy_save_f8(const char *path, const double *data, size_t rows,
                size_t cols, char *errbuf, size_t errsize);

#endif /* CFD_TOOLS_NPY_H */
