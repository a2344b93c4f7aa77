/*
 * fdchannel.h -- a remo_channel over two file descriptors: the smallest
 * transport that is worth writing, and the helper's half of exec://.
 *
 * A program started by the exec transport (transport/exec/exec.c) finds
 * its peer on fds 0 and 1; remo has no "channel from fds" of its own, so
 * this demo brings one.  It frames each message with a 4-byte big-endian
 * length, as the stream and exec transports do, so it speaks to both.
 * README.md beside it walks through fdchannel.c step by step.
 */
#ifndef FDCHANNEL_H
#define FDCHANNEL_H

#include <remo/remo.h>

/* Messages longer than this are refused before any memory is taken. */
#define FDCHANNEL_MAX_MESSAGE REMO_DEFAULT_MAX_MESSAGE

/*
 * fdchannel_new: fills *out with a channel that reads messages from
 * in_fd and writes them to out_fd (they may be the same descriptor, a
 * socket).  Give *out to remo_session_new, which then owns it and calls
 * its destroy.
 *
 * Takes ownership of both descriptors on success (destroy closes them);
 * on failure the caller still owns them.  Returns REMO_OK or REMO_ENOMEM.
 *
 * Writing to a pipe whose reader is gone raises SIGPIPE, which kills a
 * process by default: a program using this should ignore SIGPIPE, so
 * that a vanished peer is a send that fails with REMO_EPEERLOST instead.
 *
 * The channel has no close operation (README.md says what that costs):
 * a session on it ends when the peer ends it or goes away.
 */
int fdchannel_new(int in_fd, int out_fd, remo_channel *out);

/*
 * fdchannel_stdio: fdchannel_new on this process's stdin and stdout, as
 * an exec helper needs.  Stdout is first moved to a new descriptor and
 * fd 1 pointed at stderr, so that a stray printf in the helper goes to
 * the log instead of into the message stream, where the peer would read
 * it as a broken length prefix.  REMO_OK, REMO_ENOMEM, REMO_EINVAL (the
 * descriptors could not be moved).
 */
int fdchannel_stdio(remo_channel *out);

#endif /* FDCHANNEL_H */
