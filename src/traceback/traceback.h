/*
 * traceback/traceback.h -- the traceback layer: Traceback and Frame
 * objects, live tracebacks, crash reports.  It installs the raise hook
 * (value/) and the session's crash hooks (session/); nothing below calls
 * it by name.
 */
#ifndef REMO_TRACEBACK_H
#define REMO_TRACEBACK_H

#include "api/api.h"

#endif /* REMO_TRACEBACK_H */
