/*
 * types/cif.h -- libffi's prepared call interface of a signature, private
 * to types/: the one header that includes <ffi.h>, so that libffi stays
 * inside the layer that calls C (sig.c) and makes C function pointers
 * (cfn.c).
 */
#ifndef REMO_TYPES_CIF_H
#define REMO_TYPES_CIF_H

#include "types/types.h"

#include <ffi.h>

/* One allocation: the cif, then the C parameter types it points to. */
struct remo__cif {
	ffi_cif cif;
	ffi_type *ctypes[];
};

#endif /* REMO_TYPES_CIF_H */
