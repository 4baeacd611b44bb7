#!/usr/bin/env bash
# make-busybox-rootfs.sh OUT.tar
#
# Builds a minimal busybox root filesystem tarball, offline, from Debian's
# busybox-static (/bin/busybox). The tests import it as `busybox:latest`.
#
# Layout: bin/busybox plus one relative symlink per applet, at the path that
# `busybox --list-full` gives (bin/, sbin/, usr/bin/, usr/sbin/); etc/passwd and
# etc/group (root, daemon, nobody, user 1000); empty tmp (1777), root, home/user,
# var, proc, sys, dev. No etc/hosts, hostname or resolv.conf: the daemon manages those.
#
# The output is deterministic (sorted names, uid/gid 0 except home/user, mtime 0),
# so the imported image gets the same layer digest on every machine with the same
# busybox build. Prints the absolute path of the tarball.
set -euo pipefail

die() { echo "make-busybox-rootfs: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUT.tar"
busybox=${BUSYBOX:-/bin/busybox}

[ -x "$busybox" ] || die "$busybox not found; install it with: apt-get install busybox-static"
# Debian's `busybox` package also installs /bin/busybox, dynamically linked; that one
# cannot run inside a rootfs with no libc. ldd fails on a static binary.
if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked; install the static one with: apt-get install busybox-static"
fi
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required"

out_dir=$(mkdir -p "$(dirname "$1")" && cd "$(dirname "$1")" && pwd)
out="$out_dir/$(basename "$1")"

work=$(mktemp -d)
tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
root="$work/rootfs"

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/user,var,proc,sys,dev,tmp}
install -m 0755 "$busybox" "$root/bin/busybox"

# Each applet links to bin/busybox relative to its own directory:
# bin/sh -> busybox, sbin/ip -> ../bin/busybox, usr/bin/env -> ../../bin/busybox.
while IFS= read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    case "$applet" in
        bin/*) target=busybox ;;
        */*)
            dir=${applet%/*}
            mkdir -p "$root/$dir"
            target=bin/busybox
            while [ -n "$dir" ]; do
                target="../$target"
                case "$dir" in */*) dir=${dir#*/} ;; *) dir="" ;; esac
            done
            ;;
        *) target=bin/busybox ;;
    esac
    ln -sfn "$target" "$root/$applet"
done < <("$busybox" --list-full | LC_ALL=C sort)

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
user:x:1000:
nogroup:x:65534:
EOF

find "$root" -type d -exec chmod 0755 {} +
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

# Everything belongs to root except home/user, appended with its own owner.
tar_flags=(--format=gnu --sort=name --numeric-owner --mtime=@0 --no-acls --no-xattrs)
top=$(cd "$root" && LC_ALL=C ls -A)
# shellcheck disable=SC2086  # top-level names contain no spaces
tar -C "$root" -cf "$tmp_out" "${tar_flags[@]}" --owner=0 --group=0 \
    --exclude=home/user $top
tar -C "$root" -rf "$tmp_out" "${tar_flags[@]}" --owner=1000 --group=1000 \
    --no-recursion home/user
mv -f "$tmp_out" "$out"
echo "$out"
