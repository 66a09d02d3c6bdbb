#!/usr/bin/env bash
# No file-level mutable state in the libraries: the embedded cluster runs the
# broker and several workers as threads of one process, so a writable static
# is shared by all of them (docs/architecture.md section 7). A qsort
# comparator that read a file-level pointer once gave two live tensors the
# same memory (docs/reliability.md section 7).
#
# Lists every symbol in a writable data section (.bss, .data, .data.rel,
# .data.rel.local, .tbss, .tdata) of the given static libraries, generated
# protobuf-c code aside (its descriptors are written once by the linker), and
# fails on any that is not in the allowlist below with its reason.
#
# usage: no_shared_state.sh LIB.a...
set -euo pipefail

# symbol (as objdump names it)  why it may stay
allowed() {
  case "$1" in
    arena_mark) return 0 ;;        # ac_qexec: only its address is used, as a placeholder
    g_force_ref_state) return 0 ;; # ac_conv_ref_f32: read and set with atomics
    seq.*) return 0 ;;             # ac_cluster: atomic counter for unique inproc names
  esac
  return 1
}

command -v objdump >/dev/null || { echo "no_shared_state: objdump (binutils) is missing" >&2; exit 1; }
[ $# -ge 1 ] || { echo "usage: $0 LIB.a..." >&2; exit 2; }
bad=0
checked=0
for lib in "$@"; do
  [ -f "$lib" ] || { echo "no_shared_state: $lib: no such library" >&2; exit 2; }
  # "lib.a(obj.o): symbol section"
  while read -r obj sym section; do
    checked=$((checked + 1))
    if ! allowed "$sym"; then
      echo "no_shared_state: $(basename "$lib")($obj): '$sym' lives in $section, a writable" \
           "section shared by every thread; keep it in a handle (or allow it here with a reason)" >&2
      bad=$((bad + 1))
    fi
  done < <(objdump -t "$lib" | awk '
      /^In archive/ { next }
      /file format/ { obj = $1; sub(/:$/, "", obj); next }
      $0 ~ /[ \t](\.bss|\.data|\.data\.rel|\.data\.rel\.local|\.tbss|\.tdata)[ \t]/ {
        sym = $NF; sec = ""
        for (i = 1; i <= NF; i++) if ($i ~ /^\.(bss|data|tbss|tdata)/) { sec = $i; break }
        if (sym ~ /^\./ || obj ~ /pb-c\.c\.o$/) next
        print obj, sym, sec
      }')
done
if [ "$bad" -gt 0 ]; then
  echo "no_shared_state: $bad writable static(s) not allowed" >&2
  exit 1
fi
echo "no_shared_state: $checked allowed writable static(s) in $# libraries, none other"
