/* Stand-in for ci/cross-check.sh (compile checks only): see README.md. */
#ifndef CROSS_CHECK_STDLIB_H
#define CROSS_CHECK_STDLIB_H
#include <stddef.h>
void abort(void);
void *malloc(size_t n);
void free(void *p);
#endif
