/*
 * dwarf.c -- the locals of a live stack, read from DWARF: what a
 * debugger would print for each frame, without a debugger.
 *
 * For each frame, libunwind gives the pc and the registers it can
 * recover; libdw gives the scopes that hold the pc (lexical blocks,
 * inlined calls, the function) and, for each parameter and variable in
 * them, a location expression valid at that pc.  A small evaluator
 * (dw_eval) runs the expression with the frame's registers, its CFA
 * (the caller's stack pointer: the SP of the next frame out) and its
 * frame base, and the value is read from memory with process_vm_readv
 * on our own pid, so that a stale or wrong address gives
 * "<unreadable 0x...>" and never a fault.
 *
 * What an unwinder knows, and so what is "<optimized out>" here: in the
 * frame a signal interrupted (uc given, frame 0) every register, from
 * the ucontext, SSE ones too; in other frames only the registers the
 * ABI makes callees preserve (rbx, rbp, r12-r15), plus rsp and rip,
 * because libunwind keeps caller-saved registers at their inner values,
 * which would be wrong.  The frame right after a signal trampoline has
 * every general register again (the kernel saved them).
 *
 * Supported operations: DW_OP_addr, lit, const*, reg, regx, breg,
 * bregx, fbreg, call_frame_cfa, plus_uconst and the arithmetic and
 * stack ones, deref, deref_size, stack_value, implicit_value, piece (the
 * first piece only); location lists through dwarf_getlocation_addr.
 * Anything else (entry values, implicit pointers) is "<optimized out>":
 * gdb needs call-site information for those and says the same without.
 *
 * x86-64 only: DWARF numbers rax 0, rdx 1, rcx 2, rbx 3, rsi 4, rdi 5,
 * rbp 6, rsp 7, r8-r15 8-15, rip 16, xmm0-15 17-32; libunwind's
 * UNW_X86_64_* use the same numbers for 0 to 16.
 */
#include "trace/dwfl.h"

#include <dwarf.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define DW_STACK 64      /* evaluation stack depth                    */
#define DW_REG_RIP 16
#define DW_REG_XMM0 17
#define DW_REG_XMM15 32

/* One frame being read. */
struct dw_frame {
	unw_cursor_t *cur;
	ucontext_t *uc;       /* set only where SSE registers are known  */
	bool all_regs;        /* caller-saved registers are known too    */
	bool have_cfa;
	uint64_t cfa;
	Dwarf_Addr addr;      /* where to look things up (absolute)      */
	Dwarf_Addr bias;      /* the module's DWARF bias                 */
	Dwarf_Die *func;      /* the out-of-line function: frame base    */
	int fb_state;         /* 0 not yet, 1 known, -1 unavailable      */
	uint64_t fb;
};

/* Where a value is, after evaluation. */
struct dw_loc {
	enum { LOC_MEM, LOC_REG, LOC_VALUE, LOC_IMPLICIT } kind;
	uint64_t v;           /* address, or value for LOC_VALUE         */
	int reg;              /* LOC_REG                                 */
	const unsigned char *blk; /* LOC_IMPLICIT                        */
	size_t blklen;
};

/* ==== memory and registers =============================================== */

/*
 * dw_read: reads up to n bytes at addr without trusting it; returns how
 * many it could (a prefix: the remote side is cut at page boundaries,
 * and process_vm_readv stops at the first piece it cannot read).
 */
static size_t dw_read(void *dst, uint64_t addr, size_t n)
{
	struct iovec local = {dst, n};
	struct iovec remote[4];
	size_t k = 0, left = n;
	uint64_t a = addr;
	long page = sysconf(_SC_PAGESIZE);

	while (left > 0 && k < 4) {
		size_t room = (size_t)page - (size_t)(a % (uint64_t)page);
		size_t take = room < left ? room : left;
		remote[k].iov_base = (void *)(uintptr_t)a;
		remote[k].iov_len = take;
		k++;
		a += take;
		left -= take;
	}
	local.iov_len = n - left;
	ssize_t r = process_vm_readv(getpid(), &local, 1, remote, k, 0);
	return r < 0 ? 0 : (size_t)r;
}

static bool dw_read_all(void *dst, uint64_t addr, size_t n)
{
	return dw_read(dst, addr, n) == n;
}

/* rbx, rbp, rsp, r12-r15, rip: known in every frame. */
static bool dw_reg_preserved(int r)
{
	return r == 3 || r == 6 || r == 7 || (r >= 12 && r <= 15) ||
	       r == DW_REG_RIP;
}

static bool dw_reg(const struct dw_frame *f, int r, uint64_t *v)
{
	unw_word_t w;
	if (r < 0 || r > DW_REG_RIP || (!f->all_regs && !dw_reg_preserved(r)))
		return false;
	if (unw_get_reg(f->cur, r, &w) < 0)
		return false;
	*v = w;
	return true;
}

/* dw_bytes: the first n bytes of the value at loc; false if unknown. */
static bool dw_bytes(const struct dw_frame *f, const struct dw_loc *loc,
                     void *dst, size_t n)
{
	uint64_t v;
	switch (loc->kind) {
	case LOC_MEM:
		return dw_read_all(dst, loc->v, n);
	case LOC_VALUE:
		if (n > sizeof v)
			return false;
		memcpy(dst, &loc->v, n);
		return true;
	case LOC_IMPLICIT:
		if (n > loc->blklen)
			return false;
		memcpy(dst, loc->blk, n);
		return true;
	case LOC_REG:
		if (loc->reg >= DW_REG_XMM0 && loc->reg <= DW_REG_XMM15) {
			if (f->uc == NULL || f->uc->uc_mcontext.fpregs == NULL ||
			    n > 16)
				return false;
			memcpy(dst, &f->uc->uc_mcontext.fpregs->_xmm[
			                    loc->reg - DW_REG_XMM0], n);
			return true;
		}
		if (n > sizeof v || !dw_reg(f, loc->reg, &v))
			return false;
		memcpy(dst, &v, n);
		return true;
	}
	return false;
}

/* ==== location expressions =============================================== */

static bool dw_frame_base(struct dw_frame *f, uint64_t *fb);

/*
 * dw_eval: runs a location expression.  attr is the attribute it came
 * from (for DW_OP_implicit_value's block).  false: the location is not
 * known at this pc with what the unwinder gave (or the expression is
 * malformed, or uses an operation not supported).
 */
static bool dw_eval(struct dw_frame *f, Dwarf_Attribute *attr,
                    const Dwarf_Op *ops, size_t n, bool allow_fb,
                    struct dw_loc *loc)
{
	uint64_t st[DW_STACK], a, b;
	size_t sp = 0;

#define PUSH(x) do { \
		uint64_t x_ = (x); \
		if (sp == DW_STACK) \
			return false; \
		st[sp++] = x_; \
	} while (0)
#define NEED(k) do { if (sp < (k)) return false; } while (0)
	for (size_t i = 0; i < n; i++) {
		const Dwarf_Op *op = &ops[i];
		uint8_t at = op->atom;
		bool last = i + 1 == n || ops[i + 1].atom == DW_OP_piece ||
		            ops[i + 1].atom == DW_OP_bit_piece;

		if (at >= DW_OP_lit0 && at <= DW_OP_lit31) {
			PUSH((uint64_t)(at - DW_OP_lit0));
			continue;
		}
		if (at >= DW_OP_reg0 && at <= DW_OP_reg31) {
			if (!last)
				return false;
			*loc = (struct dw_loc){.kind = LOC_REG,
			                       .reg = at - DW_OP_reg0};
			return true;
		}
		if (at >= DW_OP_breg0 && at <= DW_OP_breg31) {
			if (!dw_reg(f, at - DW_OP_breg0, &a))
				return false;
			PUSH(a + op->number);
			continue;
		}
		switch (at) {
		case DW_OP_addr:
			PUSH(op->number + f->bias);
			break;
		case DW_OP_const1u: case DW_OP_const2u: case DW_OP_const4u:
		case DW_OP_const8u: case DW_OP_constu:
		case DW_OP_const1s: case DW_OP_const2s: case DW_OP_const4s:
		case DW_OP_const8s: case DW_OP_consts:
			/* libdw gives signed operands sign-extended already */
			PUSH(op->number);
			break;
		case DW_OP_regx:
			if (!last || op->number > INT32_MAX)
				return false;
			*loc = (struct dw_loc){.kind = LOC_REG,
			                       .reg = (int)op->number};
			return true;
		case DW_OP_bregx:
			if (op->number > DW_REG_RIP ||
			    !dw_reg(f, (int)op->number, &a))
				return false;
			PUSH(a + op->number2);
			break;
		case DW_OP_fbreg:
			if (!allow_fb || !dw_frame_base(f, &a))
				return false;
			PUSH(a + op->number);
			break;
		case DW_OP_call_frame_cfa:
			if (!f->have_cfa)
				return false;
			PUSH(f->cfa);
			break;
		case DW_OP_plus_uconst:
			NEED(1);
			st[sp - 1] += op->number;
			break;
		case DW_OP_dup:
			NEED(1);
			PUSH(st[sp - 1]);
			break;
		case DW_OP_drop:
			NEED(1);
			sp--;
			break;
		case DW_OP_over:
			NEED(2);
			PUSH(st[sp - 2]);
			break;
		case DW_OP_pick:
			NEED(op->number + 1);
			PUSH(st[sp - 1 - op->number]);
			break;
		case DW_OP_swap:
			NEED(2);
			a = st[sp - 1];
			st[sp - 1] = st[sp - 2];
			st[sp - 2] = a;
			break;
		case DW_OP_neg:
			NEED(1);
			st[sp - 1] = -st[sp - 1];
			break;
		case DW_OP_not:
			NEED(1);
			st[sp - 1] = ~st[sp - 1];
			break;
		case DW_OP_plus: case DW_OP_minus: case DW_OP_mul:
		case DW_OP_and: case DW_OP_or: case DW_OP_xor:
		case DW_OP_shl: case DW_OP_shr: case DW_OP_shra:
			NEED(2);
			b = st[--sp];
			a = st[sp - 1];
			switch (at) {
			case DW_OP_plus: a += b; break;
			case DW_OP_minus: a -= b; break;
			case DW_OP_mul: a *= b; break;
			case DW_OP_and: a &= b; break;
			case DW_OP_or: a |= b; break;
			case DW_OP_xor: a ^= b; break;
			case DW_OP_shl: a = b < 64 ? a << b : 0; break;
			case DW_OP_shr: a = b < 64 ? a >> b : 0; break;
			default: /* shra */
				a = (uint64_t)((int64_t)a >> (b < 63 ? b : 63));
				break;
			}
			st[sp - 1] = a;
			break;
		case DW_OP_deref:
		case DW_OP_deref_size: {
			size_t sz = at == DW_OP_deref ? 8 : (size_t)op->number;
			NEED(1);
			if (sz == 0 || sz > 8)
				return false;
			a = 0;
			if (!dw_read_all(&a, st[sp - 1], sz))
				return false;
			st[sp - 1] = a;
			break;
		}
		case DW_OP_stack_value:
			NEED(1);
			if (!last)
				return false;
			*loc = (struct dw_loc){.kind = LOC_VALUE, .v = st[sp - 1]};
			return true;
		case DW_OP_implicit_value: {
			Dwarf_Block blk;
			if (!last || attr == NULL ||
			    dwarf_getlocation_implicit_value(attr, op, &blk) != 0)
				return false;
			*loc = (struct dw_loc){.kind = LOC_IMPLICIT,
			                       .blk = blk.data,
			                       .blklen = blk.length};
			return true;
		}
		case DW_OP_nop:
			break;
		case DW_OP_piece:
		case DW_OP_bit_piece:
			/* The first piece is the value's start; the rest of a
			 * value in pieces is not read. */
			n = i;
			break;
		default:
			return false; /* entry values, implicit pointers... */
		}
	}
#undef PUSH
#undef NEED
	if (sp == 0)
		return false; /* an empty piece: optimized out */
	*loc = (struct dw_loc){.kind = LOC_MEM, .v = st[sp - 1]};
	return true;
}

/*
 * dw_frame_base: the function's DW_AT_frame_base, evaluated once per
 * frame.  A register location means that register's contents (DWARF
 * says so for the frame base); an address (DW_OP_call_frame_cfa, a
 * breg) is the base itself.
 */
static bool dw_frame_base(struct dw_frame *f, uint64_t *fb)
{
	if (f->fb_state == 0) {
		Dwarf_Attribute a;
		Dwarf_Op *ops;
		size_t n;
		struct dw_loc loc;
		f->fb_state = -1;
		if (f->func != NULL &&
		    dwarf_attr(f->func, DW_AT_frame_base, &a) != NULL &&
		    dwarf_getlocation_addr(&a, f->addr - f->bias, &ops, &n, 1) == 1 &&
		    dw_eval(f, &a, ops, n, false, &loc)) {
			if (loc.kind == LOC_REG) {
				if (dw_reg(f, loc.reg, &f->fb))
					f->fb_state = 1;
			} else if (loc.kind == LOC_MEM || loc.kind == LOC_VALUE) {
				f->fb = loc.v;
				f->fb_state = 1;
			}
		}
	}
	*fb = f->fb;
	return f->fb_state == 1;
}

/* ==== values ============================================================= */

static remo_value dw_strf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static remo_value dw_strf(const char *fmt, ...)
{
	char buf[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return remo_str(buf);
}

static remo_value dw_optimized_out(void)
{
	return remo_str("<optimized out>");
}

/* dw_text: n bytes (a C string's) as a str, or bytes when not UTF-8;
 * cut marks that the string went on. */
static remo_value dw_text(const char *s, size_t n, bool cut)
{
	char buf[REMO__DWARF_STR_MAX + 4];
	if (!remo__utf8_valid((const uint8_t *)s, n)) {
		/* a cut in the middle of a character is not the string's
		 * fault: step back over an unfinished sequence */
		size_t k = n;
		while (cut && k > 0 && n - k < 4 &&
		       ((unsigned char)s[k - 1] & 0xc0) == 0x80)
			k--;
		if (cut && k > 0 && (unsigned char)s[k - 1] >= 0xc0)
			k--;
		if (!remo__utf8_valid((const uint8_t *)s, k))
			return remo_bytes(s, n);
		n = k;
	}
	memcpy(buf, s, n);
	if (cut) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	return remo_strn(buf, n);
}

/* dw_cstring: the C string at p, read carefully. */
static remo_value dw_cstring(uint64_t p)
{
	char buf[REMO__DWARF_STR_MAX];
	if (p == 0)
		return remo_nil();
	size_t got = dw_read(buf, p, sizeof buf);
	if (got == 0)
		return dw_strf("<unreadable 0x%" PRIx64 ">", p);
	const char *nul = memchr(buf, '\0', got);
	if (nul != NULL)
		return dw_text(buf, (size_t)(nul - buf), false);
	return dw_text(buf, got, true);
}

static bool dw_is_char(Dwarf_Die *t)
{
	Dwarf_Attribute a;
	Dwarf_Word enc;
	const char *name = dwarf_diename(t);
	return dwarf_tag(t) == DW_TAG_base_type && dwarf_bytesize(t) == 1 &&
	       dwarf_formudata(dwarf_attr(t, DW_AT_encoding, &a), &enc) == 0 &&
	       (enc == DW_ATE_signed_char || enc == DW_ATE_unsigned_char) &&
	       name != NULL && strcmp(name, "char") == 0;
}

/* dw_type: the type of die, typedefs and qualifiers peeled; false: none
 * (void). */
static bool dw_type(Dwarf_Die *die, Dwarf_Die *out)
{
	Dwarf_Attribute a;
	Dwarf_Die t;
	if (dwarf_formref_die(dwarf_attr_integrate(die, DW_AT_type, &a), &t) ==
	    NULL)
		return false;
	return dwarf_peel_type(&t, out) == 0;
}

static remo_value dw_integer(const unsigned char *b, int size, bool sign)
{
	uint64_t v = 0;
	memcpy(&v, b, (size_t)size); /* x86-64 is little-endian */
	if (sign && size < 8 && (v >> (size * 8 - 1)) & 1)
		v |= ~UINT64_C(0) << (size * 8);
	return remo_int((int64_t)v);
}

static remo_value dw_base(Dwarf_Die *t, const unsigned char *b, int size)
{
	Dwarf_Attribute a;
	Dwarf_Word enc = 0;
	dwarf_formudata(dwarf_attr(t, DW_AT_encoding, &a), &enc);
	switch (enc) {
	case DW_ATE_boolean: {
		bool any = false;
		for (int i = 0; i < size; i++)
			any |= b[i] != 0;
		return remo_bool(any);
	}
	case DW_ATE_float:
		if (size == sizeof(float)) {
			float x;
			memcpy(&x, b, sizeof x);
			return remo_double(x);
		}
		if (size == sizeof(double)) {
			double x;
			memcpy(&x, b, sizeof x);
			return remo_double(x);
		}
		if (size == sizeof(long double)) {
			long double x;
			memcpy(&x, b, sizeof x);
			return remo_double((double)x);
		}
		break;
	case DW_ATE_signed:
	case DW_ATE_signed_char:
		if (size <= 8)
			return dw_integer(b, size, true);
		break;
	case DW_ATE_unsigned:
	case DW_ATE_unsigned_char:
	case DW_ATE_UTF:
		if (size <= 8)
			return dw_integer(b, size, false);
		break;
	}
	const char *name = dwarf_diename(t);
	return dw_strf("<%s>", name ? name : "base type");
}

static remo_value dw_aggregate(Dwarf_Die *t, const char *what)
{
	const char *name = dwarf_diename(t);
	return name ? dw_strf("<%s %s>", what, name) : dw_strf("<%s>", what);
}

/* dw_value: the value at loc, of type t (NULL: none known). */
static remo_value dw_value(struct dw_frame *f, Dwarf_Die *t,
                           const struct dw_loc *loc)
{
	unsigned char b[16];
	Dwarf_Die pt, et;
	Dwarf_Word size;
	uint64_t p;

	if (t == NULL)
		return remo_str("<void>");
	int tag = dwarf_tag(t);
	int bsize = dwarf_bytesize(t);
	switch (tag) {
	case DW_TAG_base_type:
	case DW_TAG_enumeration_type:
		if (bsize <= 0 || bsize > 16)
			return dw_aggregate(t, "type");
		if (!dw_bytes(f, loc, b, (size_t)bsize))
			break;
		if (tag == DW_TAG_base_type)
			return dw_base(t, b, bsize);
		if (bsize > 8)
			return dw_aggregate(t, "enum");
		/* an enum is its underlying type's kind of integer */
		if (dw_type(t, &et) && dwarf_tag(&et) == DW_TAG_base_type)
			return dw_base(&et, b, bsize);
		return dw_integer(b, bsize, false);
	case DW_TAG_pointer_type:
	case DW_TAG_reference_type:
	case DW_TAG_rvalue_reference_type:
		if (!dw_bytes(f, loc, &p, sizeof p))
			break;
		if (dw_type(t, &pt) && dw_is_char(&pt))
			return dw_cstring(p);
		return dw_strf("0x%" PRIx64, p);
	case DW_TAG_array_type:
		if (dw_type(t, &et) && dw_is_char(&et) &&
		    dwarf_aggregate_size(t, &size) == 0 && size > 0) {
			char s[REMO__DWARF_STR_MAX];
			size_t n = size < sizeof s ? (size_t)size : sizeof s;
			if (loc->kind == LOC_MEM) {
				if (dw_read(s, loc->v, n) != n)
					return dw_strf("<unreadable 0x%" PRIx64 ">",
					               loc->v);
			} else if (!dw_bytes(f, loc, s, n)) {
				break;
			}
			const char *nul = memchr(s, '\0', n);
			return nul ? dw_text(s, (size_t)(nul - s), false)
			           : dw_text(s, n, n < size);
		}
		return remo_str("<array>");
	case DW_TAG_structure_type:
		return dw_aggregate(t, "struct");
	case DW_TAG_union_type:
		return dw_aggregate(t, "union");
	case DW_TAG_class_type:
		return dw_aggregate(t, "class");
	default:
		return dw_aggregate(t, "type");
	}
	/* the bytes could not be had */
	if (loc->kind == LOC_MEM)
		return dw_strf("<unreadable 0x%" PRIx64 ">", loc->v);
	return dw_optimized_out();
}

/* dw_const: a variable the compiler replaced by a constant. */
static remo_value dw_const(struct dw_frame *f, Dwarf_Die *t,
                           Dwarf_Attribute *a)
{
	Dwarf_Block blk;
	Dwarf_Sword s;
	struct dw_loc loc = {.kind = LOC_IMPLICIT};
	if (dwarf_formblock(a, &blk) == 0) {
		loc.blk = blk.data;
		loc.blklen = blk.length;
		return dw_value(f, t, &loc);
	}
	if (dwarf_formsdata(a, &s) != 0)
		return dw_optimized_out();
	loc.kind = LOC_VALUE;
	loc.v = (uint64_t)s;
	return dw_value(f, t, &loc);
}

static remo_value dw_variable(struct dw_frame *f, Dwarf_Die *var)
{
	Dwarf_Attribute a;
	Dwarf_Op *ops;
	size_t n;
	struct dw_loc loc;
	Dwarf_Die type;
	Dwarf_Die *t = dw_type(var, &type) ? &type : NULL;

	/* the location is the concrete DIE's own: an abstract origin has
	 * none, a constant may come from either */
	if (dwarf_attr(var, DW_AT_location, &a) == NULL) {
		if (dwarf_attr_integrate(var, DW_AT_const_value, &a) != NULL)
			return dw_const(f, t, &a);
		return dw_optimized_out();
	}
	if (dwarf_getlocation_addr(&a, f->addr - f->bias, &ops, &n, 1) != 1 ||
	    n == 0 || !dw_eval(f, &a, ops, n, true, &loc))
		return dw_optimized_out();
	return dw_value(f, t, &loc);
}

/* dw_scope_vars: adds the parameters and variables declared directly in
 * scope to d, leaving alone names an inner scope gave already. */
static int dw_scope_vars(struct dw_frame *f, Dwarf_Die *scope, remo_value d)
{
	Dwarf_Die child;
	if (dwarf_child(scope, &child) != 0)
		return REMO_OK;
	do {
		int tag = dwarf_tag(&child);
		remo_value old;
		if (tag != DW_TAG_formal_parameter && tag != DW_TAG_variable)
			continue;
		if (dwarf_hasattr_integrate(&child, DW_AT_declaration))
			continue; /* "extern int x;" inside a function */
		if (dwarf_hasattr_integrate(&child, DW_AT_artificial))
			continue; /* made by the compiler ("this", ...) */
		Dwarf_Attribute a;
		const char *name =
			dwarf_formstring(dwarf_attr_integrate(&child, DW_AT_name, &a));
		if (name == NULL || remo_dict_get_str(d, name, &old) == REMO_OK)
			continue;
		/* __func__ and friends: the compiler's, in every function
		 * that names itself (REMO_LOCAL does) */
		if (strcmp(name, "__func__") == 0 ||
		    strcmp(name, "__FUNCTION__") == 0 ||
		    strcmp(name, "__PRETTY_FUNCTION__") == 0)
			continue;
		int st = remo_dict_set_str(d, name, dw_variable(f, &child));
		if (st != REMO_OK)
			return st;
	} while (dwarf_siblingof(&child, &child) == 0);
	return REMO_OK;
}

/* dw_frame_locals: the dict of one frame into *out (new). */
static int dw_frame_locals(Dwfl *dwfl, struct dw_frame *f, remo_value *out)
{
	Dwarf_Die cu, *scopes;
	Dwarf_Addr bias;
	int st = REMO_OK;

	*out = remo_dict();
	if (!remo_ok(*out))
		return REMO_ENOMEM;
	Dwfl_Module *mod = remo__dwfl_module(dwfl, f->addr);
	if (mod == NULL || dwfl_module_getdwarf(mod, &bias) == NULL)
		return REMO_OK;
	f->bias = bias;
	int n = remo__dwarf_scopes(mod, f->addr, &cu, &scopes);
	for (int i = 0; i < n; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag == DW_TAG_subprogram) {
			f->func = &scopes[i];
			break;
		}
	}
	for (int i = 0; i < n && st == REMO_OK; i++) {
		st = dw_scope_vars(f, &scopes[i], *out);
		if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram)
			break;
	}
	remo__free(scopes);
	f->func = NULL;
	return st;
}

/* ==== the walk =========================================================== */

int remo__trace_dwarf_locals(void *uc, int skip, remo_value *out)
{
	unw_context_t ctx;
	unw_cursor_t cur, next;
	bool exact, all_regs;
	int st = REMO_OK;

	*out = remo_nil();
	if (uc != NULL) {
		if (unw_init_local2(&cur, (unw_context_t *)uc,
		                    UNW_INIT_SIGNAL_FRAME) < 0)
			return REMO_EINVAL;
		exact = all_regs = true;
	} else {
		/* frame 0 is this function: step out of it as well */
		if (unw_getcontext(&ctx) < 0 || unw_init_local(&cur, &ctx) < 0)
			return REMO_EINVAL;
		skip++;
		exact = all_regs = false;
	}
	for (; skip > 0; skip--) {
		if (unw_step(&cur) <= 0)
			return REMO_EINVAL;
		exact = all_regs = false;
	}

	remo_value list = remo_list();
	if (!remo_ok(list))
		return REMO_ENOMEM;
	Dwfl *dwfl = remo__dwfl_lock(&st);
	if (dwfl == NULL) {
		remo_value_release(list);
		return st;
	}
	for (int k = 0; k < REMO__TRACE_MAX && st == REMO_OK; k++) {
		unw_word_t ip, sp;
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		/*
		 * The CFA of this frame is the stack pointer of the next one
		 * out.  Copying a local cursor is how libunwind's own tests
		 * look ahead; both copies read registers through the first.
		 */
		next = cur;
		bool more = unw_step(&next) > 0;
		struct dw_frame f = {
			.cur = &cur,
			.uc = k == 0 && uc != NULL ? uc : NULL,
			.all_regs = all_regs,
			.addr = exact ? ip : ip - 1,
		};
		if (more && unw_get_reg(&next, UNW_REG_SP, &sp) == 0) {
			f.have_cfa = true;
			f.cfa = sp;
		}
		remo_value d;
		st = dw_frame_locals(dwfl, &f, &d);
		if (st == REMO_OK)
			st = remo_list_append(list, d);
		else
			remo_value_release(d);
		if (!more)
			break;
		/* after a signal trampoline: the interrupted frame, its pc
		 * exact and all its registers restored from the sigcontext */
		exact = all_regs = unw_is_signal_frame(&cur) > 0;
		cur = next;
	}
	remo__dwfl_unlock();
	if (st != REMO_OK) {
		remo_value_release(list);
		return st;
	}
	*out = list;
	return REMO_OK;
}
