/*
 * trace_subject.h -- the code test_trace.c looks at: a chain a -> b -> c
 * that captures its stack, crashes in several ways, records REMO_LOCALs
 * and reads its own DWARF locals.  trace_subject.c is compiled twice,
 * at -O0 and at -O2 (Makefile.am), each copy with its own prefix, and
 * each describes itself with a struct subject.
 */
#ifndef REMO_TRACE_SUBJECT_H
#define REMO_TRACE_SUBJECT_H

#include <stdbool.h>
#include <stdint.h>

#include <remo/remo.h>

enum subject_mode {
	SUBJ_CAPTURE,  /* c's inlined helper captures the stack           */
	SUBJ_WRITE,    /* c writes through ctx->ptr (NULL, read-only...)  */
	SUBJ_FPE,      /* c divides by a volatile zero                    */
	SUBJ_ABORT,    /* c calls abort()                                 */
	SUBJ_LOCALS,   /* a and c record REMO_LOCALs and return           */
	SUBJ_DWARF,    /* c reads the DWARF locals of its own stack       */
	SUBJ_QSORT,    /* c sorts; the comparison, called by libc, captures */
};

struct subject_ctx {
	int mode;
	int *ptr;              /* SUBJ_WRITE: where c writes              */
	uintptr_t pcs[64];     /* SUBJ_CAPTURE, SUBJ_QSORT                */
	int npcs;
	remo_value dlocals;    /* SUBJ_DWARF                              */
	int dstatus;
	volatile int sink;
};

/* Source lines, stored by the subject as it runs (__LINE__ markers on
 * the line they name), so that no test hard-codes a number. */
struct subject_lines {
	int a_calls_b;
	int b_calls_c;
	int c_calls_inl;
	int inl_captures;
	int c_writes;
	int c_divides;
	int c_aborts;
	int c_dwarf;
	int c_sorts;
	int cmp_captures;
};

struct subject {
	const char *opt;            /* "O0", "O2"                         */
	bool optimized;
	/* a(ctx, depth): the chain's entry; returns a value from c */
	int (*a)(struct subject_ctx *ctx, int depth);
	/* the functions' names as DWARF has them */
	const char *name_a, *name_b, *name_c, *name_inl, *name_cmp;
	struct subject_lines *lines;
};

extern const struct subject subject_o0, subject_o2;

#endif /* REMO_TRACE_SUBJECT_H */
