#!/bin/sh
# check_layers.sh -- src/ calls only downward (doc/design.md section 1).
#
# The layers, bottom to top, one folder of src/ each:
#
#   base value wire types trace channel session api traceback net
#
# Two rules, checked on what the compiler and the linker see:
#
#   includes  a file of folder L includes, of src/'s headers, only those
#             of its own folder and the one header X/X.h of a layer X
#             below L (a layer's other headers are private to it);
#   libffi    <ffi.h> is included in types/ alone (types/cif.h), the
#             layer that calls C and makes C function pointers;
#   symbols   an object file of layer L uses no name (remo_ or remo__)
#             that only an object file of a layer above L defines.  A
#             lower layer reaches a higher one only through a hook the
#             higher layer installs (a function pointer), which the
#             linker does not see as a call.
#
# Each violation is printed with the file and the header or name.
#
# Environment: SRC (default $top_srcdir/src) and OBJ (default
# $top_builddir/src): where the sources and the object files are.  make
# check sets both; tests/test_check_layers.sh points them at planted trees.
set -u
LAYERS="base value wire types trace channel session api traceback net"
SRC=${SRC:-${top_srcdir:-.}/src}
OBJ=${OBJ:-${top_builddir:-.}/src}

rank() {
	i=0
	for l in $LAYERS; do
		[ "$l" = "$1" ] && { echo $i; return; }
		i=$((i + 1))
	done
	echo -1
}

bad=0
checked=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# ---- every folder of src/ is a layer --------------------------------------
for d in "$SRC"/*/; do
	d=${d%/}
	l=${d##*/}
	if [ "$(rank "$l")" -lt 0 ]; then
		echo "check_layers: src/$l is not a layer (add it to LAYERS here and to doc/design.md)"
		bad=$((bad + 1))
	fi
done
for f in "$SRC"/*.c "$SRC"/*.h; do
	[ -e "$f" ] || continue
	echo "check_layers: ${f#"$SRC"/} is in no layer's folder"
	bad=$((bad + 1))
done

# ---- includes ----------------------------------------------------------
for l in $LAYERS; do
	r=$(rank "$l")
	for f in "$SRC/$l"/*.c "$SRC/$l"/*.h; do
		[ -e "$f" ] || continue
		checked=$((checked + 1))
		sed -n 's/^[ \t]*#[ \t]*include[ \t]*"\([a-z_]*\)\/\([^"]*\)".*/\1 \2/p' "$f" |
		while read -r x h; do
			[ "$x" = "$l" ] && continue
			xr=$(rank "$x")
			[ "$xr" -lt 0 ] && continue # remo/..., not a layer
			if [ "$xr" -gt "$r" ]; then
				echo "check_layers: src/$l/${f##*/} includes $x/$h: layer $x is above $l"
			elif [ "$h" != "$x.h" ]; then
				echo "check_layers: src/$l/${f##*/} includes $x/$h: only $x/$x.h is for other layers"
			fi
		done >>"$tmp/includes"
		if [ "$l" != types ] &&
		   grep -Eq '^[[:space:]]*#[[:space:]]*include[[:space:]]*<ffi\.h>' "$f"; then
			echo "check_layers: src/$l/${f##*/} includes <ffi.h>: libffi is types/'s alone" >>"$tmp/includes"
		fi
	done
done
if [ -s "$tmp/includes" ]; then
	cat "$tmp/includes"
	bad=$((bad + $(wc -l <"$tmp/includes")))
fi

# ---- symbols -----------------------------------------------------------
# defs: "rank layer symbol" for each name an object file defines
: >"$tmp/defs"
: >"$tmp/uses"
nobj=0
for l in $LAYERS; do
	r=$(rank "$l")
	for o in $(find "$OBJ/$l" -name '*.o' 2>/dev/null | sort); do
		nobj=$((nobj + 1))
		nm --defined-only "$o" | awk -v r="$r" -v l="$l" \
			'$2 ~ /^[TDBRVW]$/ && $3 ~ /^remo_/ {print r, l, $3}' >>"$tmp/defs"
		nm --undefined-only "$o" | awk -v r="$r" -v l="$l" -v o="${o##*/}" \
			'$2 ~ /^remo_/ {print r, l, o, $2}' >>"$tmp/uses"
	done
done
if [ "$nobj" -eq 0 ]; then
	echo "check_layers: no object files under $OBJ: build first"
	exit 1
fi
# a use is upward when no layer at or below the user's defines the name
# and a layer above it does
awk 'NR == FNR { if (!($3 in low) || $1 < low[$3]) { low[$3] = $1; where[$3] = $2 }; next }
     ($4 in low) && low[$4] > $1 {
	     printf "check_layers: %s (layer %s) calls %s, which only layer %s defines\n",
	            $3, $2, $4, where[$4]
     }' "$tmp/defs" "$tmp/uses" >"$tmp/symbols"
if [ -s "$tmp/symbols" ]; then
	cat "$tmp/symbols"
	bad=$((bad + $(wc -l <"$tmp/symbols")))
fi

echo "check_layers: $checked source files, $nobj object files, $bad violations"
if [ "$bad" -ne 0 ]; then
	echo "[  FAILED  ] 1 test(s)."
	exit 1
fi
echo "[  PASSED  ] 1 test(s)."
