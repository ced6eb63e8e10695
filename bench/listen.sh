# Shell helpers shared by the bench scripts (sourced, POSIX sh).

# Inodes of the sockets listening on TCP port $1 (state 0A in proc(5) net/tcp).
listeners() {
    hex=$(printf ':%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p="$hex" 'substr($2, length($2) - 4) == p && $4 == "0A" { print $10 }'
}
listening() { [ -n "$(listeners "$1")" ]; }

# True if process $1 holds a socket listening on port $2.
listening_pid() {
    for inode in $(listeners "$2"); do
        for fd in "/proc/$1/fd"/*; do
            [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$inode]" ] && return 0
        done
    done
    return 1
}
