/*
 * trace.c -- a failure's stack: captured as raw program counters with
 * libunwind, named later with libdw.
 *
 * Capture must be cheap and work inside a signal handler, because it
 * happens at every failure and at crashes; naming is slow and happens
 * only when someone looks at a frame.  So the two are apart: a captured
 * stack is an array of pcs, nothing more.
 *
 * Capture is libunwind's unw_backtrace, which walks the stack with a
 * per-thread cache of frame layouts (about 0.1 us for ten frames here).
 * Only unw_* names are used: libunwind also exports a weak backtrace()
 * that would silently replace glibc's in anything that calls it.
 * Capture from a signal context steps a cursor started from the handler's
 * ucontext (slower, and only done at crashes).
 *
 * Naming has one libdw session (a Dwfl) for the process, behind one
 * mutex: libdw is not thread-safe.  Modules come from /proc/self/maps
 * (dwfl_linux_proc_report) and are reported again when the dynamic
 * loader's counts of loads and unloads change: libdw 0.188 otherwise
 * answers for a library dlopen'ed after the report with the module
 * before it.  Debug information is found in the module itself or by
 * build id under /usr/lib/debug; libdw's network lookup (debuginfod) is
 * never started by remo, because naming a traceback must not wait on a
 * server: the standard lookup (which would) is used only when
 * DEBUGINFOD_URLS is unset.
 */
#include "trace/dwfl.h"

#include <dwarf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

/* ==== capture ============================================================ */

/* Frames unw_backtrace may fill beyond what the caller keeps: this
 * function's own frame and the caller's skip. */
#define TRACE_SKIP_MAX 64

__attribute__((noinline))
int remo__trace_capture(uintptr_t *pcs, int max, int skip)
{
	void *buf[REMO__TRACE_MAX + TRACE_SKIP_MAX + 1];

	if (max > REMO__TRACE_MAX)
		max = REMO__TRACE_MAX;
	if (skip < 0)
		skip = 0;
	if (skip > TRACE_SKIP_MAX)
		skip = TRACE_SKIP_MAX;
	if (max <= 0)
		return 0;
	/* buf[0] is the return address into this function itself */
	int n = unw_backtrace(buf, max + skip + 1);
	int k = 0;
	for (int i = skip + 1; i < n && k < max; i++)
		pcs[k++] = (uintptr_t)buf[i];
	return k;
}

int remo__trace_capture_uc(void *ucontext, uintptr_t *pcs, int max)
{
	unw_cursor_t c;
	int k = 0;

	if (max > REMO__TRACE_MAX)
		max = REMO__TRACE_MAX;
	/* On x86-64, libunwind's context is the ucontext_t itself. */
	if (ucontext == NULL || max <= 0 ||
	    unw_init_local2(&c, (unw_context_t *)ucontext,
	                    UNW_INIT_SIGNAL_FRAME) < 0)
		return 0;
	do {
		unw_word_t ip;
		if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		pcs[k++] = (uintptr_t)ip;
	} while (k < max && unw_step(&c) > 0);
	return k;
}

/* ==== the libdw session ================================================== */

/*
 * trace_find_debuginfo: where libdw looks for debug information that is
 * not in the module: by build id first; libdw's standard lookup (debug
 * links) only when it cannot reach for the network (see the top).
 */
static int trace_find_debuginfo(Dwfl_Module *mod, void **userdata,
                                const char *modname, Dwarf_Addr base,
                                const char *file_name,
                                const char *debuglink_file,
                                GElf_Word debuglink_crc,
                                char **debuginfo_file_name)
{
	int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base,
	                                      file_name, debuglink_file,
	                                      debuglink_crc,
	                                      debuginfo_file_name);
	if (fd >= 0)
		return fd;
	const char *urls = getenv("DEBUGINFOD_URLS");
	if (urls != NULL && urls[0] != '\0')
		return -1;
	return dwfl_standard_find_debuginfo(mod, userdata, modname, base,
	                                    file_name, debuglink_file,
	                                    debuglink_crc,
	                                    debuginfo_file_name);
}

static char *trace_debuginfo_path; /* NULL: libdw's default path */

static const Dwfl_Callbacks trace_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = trace_find_debuginfo,
	.debuginfo_path = &trace_debuginfo_path,
};

/* Error-checking, so that a thread that crashed inside libdw and then
 * asks for DWARF locals from its handler gets EDEADLK, not a hang. */
static pthread_mutex_t trace_lock = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
/* This thread holds trace_lock: read by the crash handler, so that the
 * crash service does not wait for a lock the crashed thread holds. */
static __thread bool trace_lock_mine REMO__TLS_IE;
static Dwfl *trace_dwfl;
static unsigned long long trace_adds, trace_subs; /* the loader's counts */
static bool trace_reported;

static int trace_phdr_counts(struct dl_phdr_info *info, size_t size,
                             void *arg)
{
	unsigned long long *c = arg;
	if (size < offsetof(struct dl_phdr_info, dlpi_subs) +
	           sizeof info->dlpi_subs)
		return 1;
	c[0] = info->dlpi_adds;
	c[1] = info->dlpi_subs;
	return 1; /* the counts are the same in every entry: one is enough */
}

/* trace_report: tells libdw the process's modules as they are now.
 * Modules that did not change keep what libdw loaded for them. */
static void trace_report(void)
{
	dwfl_report_begin(trace_dwfl);
	dwfl_linux_proc_report(trace_dwfl, getpid());
	dwfl_report_end(trace_dwfl, NULL, NULL);
	trace_reported = true;
}

Dwfl *remo__dwfl_lock(int *status)
{
	int e = pthread_mutex_lock(&trace_lock);
	if (e != 0) {
		*status = e == EDEADLK ? REMO_ELIMIT : REMO_EINVAL;
		return NULL;
	}
	if (trace_dwfl == NULL && (trace_dwfl = dwfl_begin(&trace_callbacks))
	                          == NULL) {
		pthread_mutex_unlock(&trace_lock);
		*status = REMO_ENOMEM;
		return NULL;
	}
	unsigned long long c[2] = {0, 0};
	dl_iterate_phdr(trace_phdr_counts, c);
	if (!trace_reported || c[0] != trace_adds || c[1] != trace_subs) {
		trace_adds = c[0];
		trace_subs = c[1];
		trace_report();
	}
	*status = REMO_OK;
	trace_lock_mine = true;
	return trace_dwfl;
}

void remo__dwfl_unlock(void)
{
	trace_lock_mine = false;
	pthread_mutex_unlock(&trace_lock);
}

bool remo__trace_naming_held(void)
{
	return trace_lock_mine;
}

static Dwfl_Module *trace_module_in_range(Dwfl *dwfl, Dwarf_Addr addr)
{
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, addr);
	Dwarf_Addr start, end;
	if (mod == NULL ||
	    dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL,
	                     NULL) == NULL ||
	    addr < start || addr >= end)
		return NULL;
	return mod;
}

Dwfl_Module *remo__dwfl_module(Dwfl *dwfl, Dwarf_Addr addr)
{
	Dwfl_Module *mod = trace_module_in_range(dwfl, addr);
	if (mod == NULL) {
		trace_report();
		mod = trace_module_in_range(dwfl, addr);
	}
	return mod;
}

/* Tags whose children may hold the code at an address: scopes with pc
 * ranges, and C++'s namespaces and classes (no ranges of their own). */
static bool trace_scope_tag(int tag, bool *ranged)
{
	switch (tag) {
	case DW_TAG_subprogram:
	case DW_TAG_inlined_subroutine:
	case DW_TAG_lexical_block:
	case DW_TAG_entry_point:
	case DW_TAG_try_block:
	case DW_TAG_catch_block:
		*ranged = true;
		return true;
	case DW_TAG_namespace:
	case DW_TAG_module:
	case DW_TAG_structure_type:
	case DW_TAG_class_type:
	case DW_TAG_union_type:
		*ranged = false;
		return true;
	}
	return false;
}

/*
 * trace_descend: from parent, the innermost chain of scopes holding addr,
 * appended to *chain (innermost last).  One walk down the tree that
 * skips every sibling not holding addr (with its DW_AT_sibling, where
 * the compiler gave one): libdw's dwarf_getscopes visits the whole
 * compile unit, and dwarf_getscopes_die (needed above an inlined call)
 * visits it again, which made naming one pc cost tens of microseconds.
 */
static int trace_descend(Dwarf_Die *parent, Dwarf_Addr addr,
                         Dwarf_Die **chain, int *n, int *cap)
{
	Dwarf_Die child;
	if (dwarf_child(parent, &child) != 0)
		return 0;
	do {
		bool ranged;
		int found;
		if (!trace_scope_tag(dwarf_tag(&child), &ranged))
			continue;
		if (ranged && dwarf_haspc(&child, addr) <= 0)
			continue;
		if (*n == *cap) {
			int ncap = *cap ? 2 * *cap : 16;
			Dwarf_Die *c = remo__realloc(*chain,
			                             (size_t)ncap * sizeof *c);
			if (c == NULL)
				return -1;
			*chain = c;
			*cap = ncap;
		}
		(*chain)[(*n)++] = child;
		found = trace_descend(&(*chain)[*n - 1], addr, chain, n, cap);
		if (found < 0)
			return -1;
		if (ranged || found > 0)
			return 1;
		(*n)--; /* a namespace or class without it: not a scope here */
	} while (dwarf_siblingof(&child, &child) == 0);
	return 0;
}

int remo__dwarf_scopes(Dwfl_Module *mod, Dwarf_Addr addr, Dwarf_Die *cu,
                       Dwarf_Die **scopes)
{
	Dwarf_Addr bias;
	Dwarf_Die *cudie = dwfl_module_addrdie(mod, addr, &bias);
	Dwarf_Die *chain = NULL;
	int n = 0, cap = 0;

	*scopes = NULL;
	if (cudie == NULL)
		return 0;
	*cu = *cudie;
	if (trace_descend(cudie, addr - bias, &chain, &n, &cap) < 0 || n == 0) {
		remo__free(chain);
		return 0;
	}
	/* innermost first, as the callers read it */
	for (int i = 0; i < n / 2; i++) {
		Dwarf_Die t = chain[i];
		chain[i] = chain[n - 1 - i];
		chain[n - 1 - i] = t;
	}
	*scopes = chain;
	return n;
}

/* ==== naming ============================================================= */

/* A growing array of frames. */
struct trace_frames {
	struct remo__frame_info *f;
	size_t n, cap;
	bool oom;
};

/* trace_push: a new entry for pc with copies of the strings (any may be
 * NULL); on failure sets oom and returns NULL. */
static struct remo__frame_info *trace_push(struct trace_frames *fs,
                                           uintptr_t pc, const char *module,
                                           uintptr_t offset,
                                           const char *function,
                                           const char *file, int line,
                                           int column)
{
	if (fs->oom)
		return NULL;
	if (fs->n == fs->cap) {
		size_t cap = fs->cap ? 2 * fs->cap : 16;
		struct remo__frame_info *f =
			remo__realloc(fs->f, cap * sizeof *f);
		if (f == NULL) {
			fs->oom = true;
			return NULL;
		}
		fs->f = f;
		fs->cap = cap;
	}
	struct remo__frame_info *e = &fs->f[fs->n];
	memset(e, 0, sizeof *e);
	e->pc = pc;
	e->offset = offset;
	e->line = line;
	e->column = column;
	e->module = remo__strdup(module ? module : "?");
	e->function = remo__strdup(function);
	e->file = remo__strdup(file);
	fs->n++;
	if (e->module == NULL || (function && e->function == NULL) ||
	    (file && e->file == NULL))
		fs->oom = true;
	return e;
}

/* The name of a function or inlined call: its own DW_AT_name, or its
 * abstract origin's (inlined calls and out-of-line clones have one). */
static const char *trace_die_name(Dwarf_Die *die)
{
	Dwarf_Attribute a;
	return dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
}

static int trace_die_udata(Dwarf_Die *die, int name)
{
	Dwarf_Attribute a;
	Dwarf_Word w;
	if (dwarf_formudata(dwarf_attr(die, name, &a), &w) != 0 ||
	    w > INT32_MAX)
		return 0;
	return (int)w;
}

/*
 * trace_name_pc: the entries of one pc: looked up at addr (pc, or pc - 1
 * for a return address).  With DWARF, the innermost inlined call comes
 * first with the line the line table gives; each enclosing one, and at
 * last the function, at the position of the call below it (its
 * DW_AT_call_file and DW_AT_call_line).  Without DWARF, one entry named
 * by the ELF symbol table.
 */
static void trace_name_pc(Dwfl *dwfl, struct trace_frames *fs, uintptr_t pc,
                          Dwarf_Addr addr)
{
	Dwfl_Module *mod = remo__dwfl_module(dwfl, addr);
	if (mod == NULL) {
		trace_push(fs, pc, NULL, 0, NULL, NULL, 0, 0);
		return;
	}
	Dwarf_Addr start, bias;
	const char *modname = dwfl_module_info(mod, NULL, &start, NULL, NULL,
	                                       NULL, NULL, NULL);
	if (dwfl_module_getelf(mod, &bias) == NULL)
		bias = start;
	uintptr_t offset = pc - bias;

	const char *file = NULL;
	int line = 0, col = 0;
	Dwfl_Line *ln = dwfl_module_getsrc(mod, addr);
	if (ln != NULL)
		file = dwfl_lineinfo(ln, NULL, &line, &col, NULL, NULL);

	Dwarf_Die cu, *scopes;
	int n = remo__dwarf_scopes(mod, addr, &cu, &scopes);
	Dwarf_Files *files = NULL;
	size_t nfiles = 0;
	bool named = false;
	for (int i = 0; i < n && !fs->oom; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag != DW_TAG_inlined_subroutine &&
		    tag != DW_TAG_subprogram && tag != DW_TAG_entry_point)
			continue;
		struct remo__frame_info *e =
			trace_push(fs, pc, modname, offset,
			           trace_die_name(&scopes[i]), file, line, col);
		named = true;
		if (tag != DW_TAG_inlined_subroutine)
			break;
		if (e != NULL)
			e->inlined = true;
		/* the caller's position: the call of this inlined code */
		if (files == NULL && dwarf_getsrcfiles(&cu, &files, &nfiles) != 0)
			files = NULL;
		int fi = trace_die_udata(&scopes[i], DW_AT_call_file);
		file = files != NULL && (size_t)fi < nfiles
		       ? dwarf_filesrc(files, (size_t)fi, NULL, NULL) : NULL;
		line = trace_die_udata(&scopes[i], DW_AT_call_line);
		col = trace_die_udata(&scopes[i], DW_AT_call_column);
	}
	remo__free(scopes);
	if (named)
		return;
	/* No DWARF function here: the ELF symbol table still has a name
	 * (static functions too, unless the module was stripped). */
	GElf_Off off;
	GElf_Sym sym;
	const char *symname = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL,
	                                           NULL, NULL);
	trace_push(fs, pc, modname, offset, symname, file, line, col);
}

int remo__trace_name(const uintptr_t *pcs, int n, bool first_is_exact,
                     struct remo__frame_info **out, size_t *nout)
{
	struct trace_frames fs = {0};
	int status;

	*out = NULL;
	*nout = 0;
	Dwfl *dwfl = remo__dwfl_lock(&status);
	for (int i = 0; i < n && !fs.oom; i++) {
		/* A return address is the instruction after the call: the
		 * call itself is one byte before, and may be on another line,
		 * or the last instruction of an inlined range or a function. */
		Dwarf_Addr addr = pcs[i];
		if ((i > 0 || !first_is_exact) && addr > 0)
			addr--;
		if (dwfl != NULL)
			trace_name_pc(dwfl, &fs, pcs[i], addr);
		else
			trace_push(&fs, pcs[i], NULL, 0, NULL, NULL, 0, 0);
	}
	if (dwfl != NULL)
		remo__dwfl_unlock();
	if (fs.oom) {
		remo__frame_info_free(fs.f, fs.n);
		return REMO_ENOMEM;
	}
	*out = fs.f;
	*nout = fs.n;
	return REMO_OK;
}

void remo__frame_info_free(struct remo__frame_info *f, size_t n)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		remo__free(f[i].file);
		remo__free(f[i].module);
		remo__free(f[i].function);
	}
	remo__free(f);
}

/* Opens a module's ELF and DWARF, the slow part of a first naming. */
static int trace_warm_module(Dwfl_Module *mod, void **userdata,
                             const char *name, Dwarf_Addr start, void *arg)
{
	Dwarf_Addr bias;
	dwfl_module_getdwarf(mod, &bias);
	return DWARF_CB_OK;
}

void remo__trace_warm(void)
{
	int status;
	Dwfl *dwfl = remo__dwfl_lock(&status);
	if (dwfl == NULL)
		return;
	dwfl_getmodules(dwfl, trace_warm_module, NULL, 0);
	remo__dwfl_unlock();
}
