#!/usr/bin/env bash
# Run by process_exec.py: writes its first argument to $A_TXT (default /tmp/a.txt), then appends the second.
out="${A_TXT:-/tmp/a.txt}"
echo "$1" > "$out"
echo "$2" >> "$out"
