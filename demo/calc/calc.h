/*
 * calc.h -- what the calc demo's server and clients share: the default
 * address.  The client knows the calculator only through its shape,
 * which the server sends; nothing else is shared.
 */
#ifndef CALC_H
#define CALC_H

#define CALC_DEFAULT_URL "nn+ipc:///tmp/remo-calc.ipc"

#endif
