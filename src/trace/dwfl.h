/*
 * dwfl.h -- libdw's one session, shared by naming (trace.c) and
 * DWARF locals (dwarf.c); private to those two files, so that the
 * rest of the library never needs libdw's headers.
 */
#ifndef REMO_TRACE_DWFL_H
#define REMO_TRACE_DWFL_H

#include "trace/trace.h"

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

/*
 * remo__dwfl_lock: takes the session's mutex (libdw is not thread-safe)
 * and returns the session, with the process's modules reported and
 * reported again if a library was loaded or unloaded since.  NULL
 * (nothing locked) with *status REMO_ENOMEM if libdw could not start,
 * or REMO_ELIMIT if this thread holds the lock already (a crash inside
 * libdw, caught by a handler that now wants to read DWARF).
 */
Dwfl *remo__dwfl_lock(int *status);
void remo__dwfl_unlock(void);

/*
 * remo__dwfl_module: the module whose address range holds addr, or NULL.
 * libdw 0.188 can answer with the module before a library loaded after
 * the last report, so the range is checked, and a miss reports once
 * more.  Under the lock.
 */
Dwfl_Module *remo__dwfl_module(Dwfl *dwfl, Dwarf_Addr addr);

/*
 * remo__dwarf_scopes: the DWARF scopes that hold addr (absolute) in the
 * concrete tree, innermost first: lexical blocks, inlined calls, then
 * the function they are in (and, in C++, the namespaces and classes
 * around it); the compile unit is not in it but in *cu.  The count
 * (*scopes remo__malloc'd: remo__free), or 0 (nothing: *scopes NULL;
 * also when memory ran out).
 */
int remo__dwarf_scopes(Dwfl_Module *mod, Dwarf_Addr addr, Dwarf_Die *cu,
                       Dwarf_Die **scopes);

#endif /* REMO_TRACE_DWFL_H */
