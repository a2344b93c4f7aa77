#!/bin/sh
# memcheck.sh -- LOG_COMPILER for `make check` under valgrind (.ci/run).
# Runs test programs under memcheck, with any error or leak fatal; shell
# scripts (check_exports.sh) run as they are.
case "$1" in
*.sh) exec "$@" ;;
esac
exec valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	--suppressions="$(dirname "$0")/valgrind.supp" \
	--track-origins=yes "$@"
