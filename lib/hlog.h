/* The helper's log: the warnings of a helper that runs in the background
 * (`tether start`), for the user to hear later.  It lives beside the
 * instance directory, in the state root, as ID.log: the helper removes
 * that directory as its last act, and what went wrong while it did (a
 * database it could not drop, a directory it could not remove) must
 * outlive it.  The helper holds a lock on it as long as it lives; then
 * `tether stop` shows it and removes it, or `tether gc` does for an
 * instance that went without a stop (expired, its owner gone, SIGKILLed).
 * `tether status` shows it while the helper runs.  It is made only at
 * the first warning: a helper without one leaves nothing here. */
#pragma once
#include <stdbool.h>
#include "util.h"

#define HLOG_SUFFIX ".log"
/* Read no more than this of a log (the helper says each cause once). */
#define HLOG_MAX (64u * 1024)

/* The log's name in the state root: ID.log (malloc'd).  The helper
 * writes it through warn_to_file() (progress.h), which locks it. */
char *hlog_name(const char *id);

/* Whether name, an entry of the state root, is a helper log: the id of
 * its instance in id. */
bool hlog_is(const char *name, char *id, size_t size);

/* Print (warn()) the warnings in the log of instance id: how many (0: no
 * log).  With take, only once its helper is gone (-EBUSY while it holds
 * the log), and the log is removed.  With into, they are appended there,
 * one line each, instead of printed. */
int hlog_show(int rootfd, const char *id, bool take, strbuf *into);
/* The same for the instance directory instdir (ROOT/ID). */
int hlog_show_dir(const char *instdir, bool take, strbuf *into);
