/*
 * sqlfile.h -- the SQLite file of a demo server (remo-tuplespace's
 * --db, remo-pod's file), opened the one way both need: made if it is
 * not there, and refused by name, left as it was, unless it is the
 * program's own: empty, or holding its marker table (key TEXT, value
 * TEXT) with ('format', '1').  WAL, synchronous NORMAL, and a 5 s busy
 * timeout.  Included by one source file of each program.
 */
#ifndef REMO_DEMO_SQLFILE_H
#define REMO_DEMO_SQLFILE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Runs sql; on failure the reason into why. */
static inline int sqlfile_exec(sqlite3 *db, const char *sql, char *why,
                               size_t cap)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		snprintf(why, cap, "%s", msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

/*
 * sqlfile_open: path opened (or made) as a file of the program whose
 * marker table is marker; an empty file gets the marker and the tables
 * of schema (SQL) in one transaction.  NULL on failure, with the reason
 * in why ("IOError: ...", or refusal, e.g. "NotAPod", and why).
 */
static inline sqlite3 *sqlfile_open(const char *path, const char *marker,
                                    const char *schema, const char *refusal,
                                    char *why, size_t cap)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	                    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		snprintf(why, cap, "IOError: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *q = NULL;
	int tables = -1, ours = 0;
	if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE "
	                       "type = 'table'", -1, &q, NULL) == SQLITE_OK) {
		int rc;
		tables = 0;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			tables++;
			ours += strcmp((const char *)sqlite3_column_text(q, 0),
			               marker) == 0;
		}
		if (rc != SQLITE_DONE)
			tables = -1;
	}
	sqlite3_finalize(q);
	bool ok = true;
	if (tables < 0) { /* not SQLite at all */
		snprintf(why, cap, "%s: %s", refusal, sqlite3_errmsg(db));
		ok = false;
	} else if (tables > 0 && !ours) {
		snprintf(why, cap, "%s: a SQLite file of something else (left "
		         "as it was)", refusal);
		ok = false;
	}
	ok = ok && sqlfile_exec(db, "PRAGMA journal_mode = WAL", why, cap) ==
	           SQLITE_OK &&
	     sqlfile_exec(db, "PRAGMA synchronous = NORMAL", why, cap) ==
	           SQLITE_OK;
	if (ok && tables == 0) {
		char sql[1024];
		snprintf(sql, sizeof sql, "BEGIN;"
		         "CREATE TABLE %s (key TEXT PRIMARY KEY, value TEXT NOT "
		         "NULL);"
		         "INSERT INTO %s VALUES ('format', '1');"
		         "%s;"
		         "COMMIT", marker, marker, schema);
		ok = sqlfile_exec(db, sql, why, cap) == SQLITE_OK;
	}
	if (ok) {
		char sql[200];
		snprintf(sql, sizeof sql, "SELECT value FROM %s WHERE key = "
		         "'format'", marker);
		const char *fmt = NULL;
		if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			fmt = (const char *)sqlite3_column_text(q, 0);
		ok = fmt != NULL && strcmp(fmt, "1") == 0;
		sqlite3_finalize(q);
		if (!ok)
			snprintf(why, cap, "%s: no format 1 in its %s table",
			         refusal, marker);
	}
	if (!ok) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

#endif
