"""Docker's default seccomp profile, as rules in our own shape, resolved per container.

The profile denies (EPERM) every system call it does not name. Most names are
allowed outright; some only on an architecture, only when the container holds a
capability (a process with CAP_SYS_ADMIN may mount, so `mount` is allowed then), or
only with certain arguments. `default_profile()` resolves those conditions against
the container's bounding set and the host architecture into the OCI
`linux.seccomp` object; `custom_profile()` does the same for a profile in Docker's
JSON format (what `--security-opt seccomp=file.json` sends). Names libseccomp does
not know are skipped by runc and crun, so new syscalls may be listed early.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockerd_py.engine.runtime.defaults import SpecError

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
EPERM, ENOSYS = 1, 38


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Allowed for everyone, grouped by what they touch.
_ALWAYS_ALLOWED: dict[str, tuple[str, ...]] = {
    "file descriptors and I/O": _names("""
        access faccessat faccessat2 open openat openat2 creat close close_range
        dup dup2 dup3 fcntl fcntl64 ioctl flock pipe pipe2 name_to_handle_at
        read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2
        lseek _llseek sendfile sendfile64 splice tee vmsplice copy_file_range
        readahead fadvise64 fadvise64_64 fallocate truncate truncate64 ftruncate ftruncate64
        fsync fdatasync sync syncfs sync_file_range"""),
    "file metadata": _names("""
        stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx
        statfs statfs64 fstatfs fstatfs64 statmount listmount umask
        chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat lchown lchown32
        utime utimes utimensat utimensat_time64 futimesat"""),
    "directories and links": _names("""
        chdir fchdir getcwd getdents getdents64 mkdir mkdirat mknod mknodat rmdir
        rename renameat renameat2 link linkat symlink symlinkat unlink unlinkat
        readlink readlinkat"""),
    "extended attributes": _names("""
        getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat
        listxattr llistxattr flistxattr listxattrat
        removexattr lremovexattr fremovexattr removexattrat"""),
    "waiting for events": _names("""
        poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64
        epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old
        epoll_pwait epoll_pwait2 eventfd eventfd2
        inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
        io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64"""),
    "processes": _names("""
        execve execveat exit exit_group fork vfork wait4 waitid waitpid
        getpid getppid gettid getpgid setpgid getpgrp getsid setsid set_tid_address
        prctl seccomp capget capset restart_syscall rseq membarrier getcpu getrandom
        uname sysinfo times getrusage getrlimit setrlimit ugetrlimit prlimit64
        getpriority setpriority ioprio_get ioprio_set
        pidfd_open pidfd_send_signal process_mrelease
        landlock_create_ruleset landlock_add_rule landlock_restrict_self
        get_robust_list set_robust_list get_thread_area set_thread_area
        futex futex_time64 futex_waitv futex_wait futex_wake futex_requeue
        uretprobe riscv_hwprobe map_shadow_stack"""),
    "user and group ids": _names("""
        getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32
        getresuid getresuid32 getresgid getresgid32 getgroups getgroups32
        setuid setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32
        setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
        setgroups setgroups32"""),
    "signals": _names("""
        kill tkill tgkill pause alarm sigaltstack sigprocmask sigreturn signalfd signalfd4
        rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_tgsigqueueinfo
        rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64"""),
    "clocks and timers": _names("""
        clock_gettime clock_gettime64 clock_getres clock_getres_time64
        clock_nanosleep clock_nanosleep_time64 clock_adjtime clock_adjtime64 adjtimex
        gettimeofday time nanosleep getitimer setitimer
        timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
        timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
        timerfd_settime timerfd_settime64"""),
    "memory": _names("""
        brk mmap mmap2 munmap mremap mprotect madvise mincore msync mseal cachestat
        mlock mlock2 mlockall munlock munlockall remap_file_pages
        memfd_create memfd_secret pkey_alloc pkey_free pkey_mprotect"""),
    "scheduling": _names("""
        sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
        sched_getparam sched_setparam sched_getscheduler sched_setscheduler
        sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval sched_rr_get_interval_time64"""),
    "System V and POSIX IPC": _names("""
        ipc msgctl msgget msgrcv msgsnd semctl semget semop semtimedop semtimedop_time64
        shmat shmctl shmdt shmget mq_open mq_unlink mq_notify mq_getsetattr
        mq_timedsend mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64"""),
    "sockets (socket itself is filtered below)": _names("""
        accept accept4 bind connect listen shutdown getsockname getpeername
        getsockopt setsockopt socketpair socketcall send sendto sendmsg sendmmsg
        recv recvfrom recvmsg recvmmsg recvmmsg_time64"""),
}

# Syscalls a capability unlocks (the profile assumes the capability check in the kernel
# is then the real guard).
_BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_DAC_READ_SEARCH": _names("open_by_handle_at"),
    "CAP_SYS_ADMIN": _names("""
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
        lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount
        open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns
        syslog umount umount2 unshare"""),
    "CAP_SYS_BOOT": _names("reboot"),
    "CAP_SYS_CHROOT": _names("chroot"),
    "CAP_SYS_MODULE": _names("delete_module init_module finit_module"),
    "CAP_SYS_PACCT": _names("acct"),
    "CAP_SYS_PTRACE": _names(
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    "CAP_SYS_RAWIO": _names("iopl ioperm"),
    "CAP_SYS_TIME": _names("settimeofday stime clock_settime clock_settime64"),
    "CAP_SYS_TTY_CONFIG": _names("vhangup"),
    "CAP_SYS_NICE": _names("get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    "CAP_SYSLOG": _names("syslog"),
    "CAP_BPF": _names("bpf"),
    "CAP_PERFMON": _names("perf_event_open"),
}

# Architecture-only syscalls, keyed by Go's architecture names (as Docker's profile is).
_BY_ARCH: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("ppc64le",), _names("sync_file_range2 swapcontext")),
    (("arm", "arm64"), _names(
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls")),
    (("amd64", "x32"), _names("arch_prctl")),
    (("amd64", "x32", "x86"), _names("modify_ldt")),
    (("s390", "s390x"), _names("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr")),
    (("riscv64",), _names("riscv_flush_icache")),
)

# Namespace flags of clone(2): without CAP_SYS_ADMIN, clone may not create namespaces.
_CLONE_NEW_NAMESPACES = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_AF_ALG, _AF_VSOCK = 38, 40  # socket families kept out of containers
# personality(2) personas that are harmless: LINUX, LINUX32, UNAME26, LINUX32|UNAME26, query
_SAFE_PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

# Host machine name → (Go arch name used in rules, seccomp architectures to load).
_ARCHES: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("amd64", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": ("arm64", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    "s390x": ("s390x", ("SCMP_ARCH_S390X", "SCMP_ARCH_S390")),
    "riscv64": ("riscv64", ("SCMP_ARCH_RISCV64",)),
    "loongarch64": ("loong64", ("SCMP_ARCH_LOONGARCH64",)),
    "ppc64le": ("ppc64le", ("SCMP_ARCH_PPC64LE",)),
    "mips64": ("mips64", ("SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
}


@dataclass(frozen=True)
class Rule:
    """One rule with the conditions under which it applies (empty = no condition)."""

    names: tuple[str, ...]
    action: str = ALLOW
    args: tuple[Mapping[str, Any], ...] = ()
    errno: int | None = None
    arches: tuple[str, ...] = ()          # only on these architectures
    caps: tuple[str, ...] = ()            # only with all these capabilities
    min_kernel: tuple[int, int] | None = None
    not_arches: tuple[str, ...] = ()      # never on these architectures
    not_caps: tuple[str, ...] = ()        # never with any of these capabilities
    not_min_kernel: tuple[int, int] | None = None

    def applies(self, arch: str, caps: Collection[str], kernel: tuple[int, int]) -> bool:
        if self.arches and arch not in self.arches:
            return False
        if any(c not in caps for c in self.caps):
            return False
        if self.min_kernel and kernel < self.min_kernel:
            return False
        if arch in self.not_arches or any(c in caps for c in self.not_caps):
            return False
        return not (self.not_min_kernel and kernel >= self.not_min_kernel)

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {"names": list(self.names), "action": self.action}
        if self.errno is not None:
            out["errnoRet"] = self.errno
        if self.args:
            out["args"] = [dict(a) for a in self.args]
        return out


def _arg(index: int, value: int, op: str, value_two: int = 0) -> Mapping[str, Any]:
    arg = {"index": index, "value": value, "op": op}
    if value_two:
        arg["valueTwo"] = value_two
    return arg


def _default_rules() -> list[Rule]:
    rules = [Rule(tuple(n for group in _ALWAYS_ALLOWED.values() for n in group))]
    rules.append(Rule(_names("process_vm_readv process_vm_writev ptrace"), min_kernel=(4, 8)))
    rules += [  # socket(2) for every family but AF_ALG and AF_VSOCK
        Rule(("socket",), args=(_arg(0, _AF_ALG, "SCMP_CMP_LT"),)),
        Rule(("socket",), args=(_arg(0, _AF_ALG + 1, "SCMP_CMP_EQ"),)),
        Rule(("socket",), args=(_arg(0, _AF_VSOCK, "SCMP_CMP_GT"),)),
    ]
    rules += [Rule(("personality",), args=(_arg(0, p, "SCMP_CMP_EQ"),)) for p in _SAFE_PERSONAS]
    rules += [Rule(names, arches=arches) for arches, names in _BY_ARCH]
    rules += [Rule(names, caps=(cap,)) for cap, names in _BY_CAPABILITY.items()]
    no_new_ns = _arg(0, _CLONE_NEW_NAMESPACES, "SCMP_CMP_MASKED_EQ")
    rules += [
        Rule(("clone",), args=(no_new_ns,), not_caps=("CAP_SYS_ADMIN",),
             not_arches=("s390", "s390x")),
        # s390 passes clone's flags as the second argument.
        Rule(("clone",), args=(_arg(1, _CLONE_NEW_NAMESPACES, "SCMP_CMP_MASKED_EQ"),),
             arches=("s390", "s390x"), not_caps=("CAP_SYS_ADMIN",)),
        # clone3 passes flags in a struct seccomp cannot inspect: make libcs fall back to clone.
        Rule(("clone3",), action=ERRNO, errno=ENOSYS, not_caps=("CAP_SYS_ADMIN",)),
    ]
    return rules


def _resolve(default_action: str, default_errno: int | None, rules: Sequence[Rule],
             machine: str, caps: Collection[str], kernel: tuple[int, int],
             extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    arch, architectures = _ARCHES.get(machine, (machine, ()))
    profile: dict[str, Any] = {"defaultAction": default_action}
    if default_errno is not None:
        profile["defaultErrnoRet"] = default_errno
    if architectures:
        profile["architectures"] = list(architectures)
    profile.update(extra or {})
    profile["syscalls"] = [r.to_oci() for r in rules if r.applies(arch, caps, kernel)]
    return profile


def default_profile(machine: str, caps: Collection[str],
                    kernel: tuple[int, int] = (99, 0)) -> dict[str, Any]:
    """Docker's default profile for a container whose bounding set is `caps`.

    `machine` is `uname -m` of the host ("x86_64"); `kernel` its (major, minor).
    """
    return _resolve(ERRNO, EPERM, _default_rules(), machine, caps, kernel)


def _kernel(text: Any) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        major, minor = str(text).split(".")
        return int(major), int(minor)
    except ValueError:
        raise SpecError(
            f'invalid kernel version: {text}, expected "<kernel>.<major>"') from None


def _rule_from_json(entry: Mapping[str, Any]) -> Rule:
    names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
    if entry.get("name") and entry.get("names"):
        raise SpecError("both 'name' and 'names' are specified in the seccomp profile, "
                               "use either 'name' or 'names'")
    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    args = tuple(dict(a) for a in entry.get("args") or ())
    return Rule(
        tuple(names), action=entry.get("action", ALLOW), args=args, errno=entry.get("errnoRet"),
        arches=tuple(inc.get("arches") or ()), caps=tuple(inc.get("caps") or ()),
        min_kernel=_kernel(inc.get("minKernel")),
        not_arches=tuple(exc.get("arches") or ()), not_caps=tuple(exc.get("caps") or ()),
        not_min_kernel=_kernel(exc.get("minKernel")),
    )


def custom_profile(text: str, machine: str, caps: Collection[str],
                   kernel: tuple[int, int] = (99, 0)) -> dict[str, Any] | None:
    """A profile in Docker's JSON format, resolved like the default; None if it is empty."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise SpecError(f"Decoding seccomp profile failed: {e}") from None
    if not doc.get("defaultAction") and not doc.get("syscalls"):
        return None  # Docker treats an empty profile as "no seccomp"
    if doc.get("architectures") and doc.get("archMap"):
        raise SpecError("both 'architectures' and 'archMap' are specified in the "
                               "seccomp profile, use either 'architectures' or 'archMap'")
    extra: dict[str, Any] = {}
    for key in ("listenerPath", "listenerMetadata", "flags"):
        if doc.get(key):
            extra[key] = doc[key]
    rules = [_rule_from_json(entry) for entry in doc.get("syscalls") or ()]
    profile = _resolve(doc.get("defaultAction", ERRNO), doc.get("defaultErrnoRet"), rules,
                       machine, caps, kernel, extra)
    if doc.get("architectures"):
        profile["architectures"] = list(doc["architectures"])
    elif doc.get("archMap"):
        native = _ARCHES.get(machine, ("", ("",)))[1][0]
        profile.pop("architectures", None)
        for entry in doc["archMap"]:
            if entry.get("architecture") == native:
                profile["architectures"] = [native, *(entry.get("subArchitectures") or ())]
                break
    else:
        profile.pop("architectures", None)
    return profile


# --- --security-opt --------------------------------------------------------------------

_BOOLS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


@dataclass(frozen=True)
class SecurityOptions:
    no_new_privileges: bool = False
    seccomp: str = ""                  # "", "unconfined", "builtin" or a JSON profile
    writable_cgroups: bool | None = None


def parse_security_opts(opts: Sequence[str]) -> SecurityOptions:
    """HostConfig.SecurityOpt as dockerd reads it; label and apparmor are ignored."""
    flags: dict[str, bool] = {}
    profile = ""
    for opt in opts:
        if opt in ("no-new-privileges", "writable-cgroups"):
            flags[opt] = True
            continue
        if opt == "disable":
            continue
        # "key=value"; "key:value" is the pre-17.04 spelling dockerd still accepts.
        key, found, value = opt.partition("=" if "=" in opt else ":")
        if not found:
            raise SpecError(f'invalid --security-opt 1: "{opt}"')
        if key in ("label", "apparmor"):
            continue  # no SELinux/AppArmor support: accepted and ignored
        if key == "seccomp":
            profile = value
        elif key in ("no-new-privileges", "writable-cgroups") and value.lower() in _BOOLS:
            flags[key] = _BOOLS[value.lower()]
        else:
            raise SpecError(f'invalid --security-opt 2: "{opt}"')
    return SecurityOptions(flags.get("no-new-privileges", False), profile,
                           flags.get("writable-cgroups"))


def select_profile(opts: SecurityOptions, privileged: bool, caps: Collection[str], *,
                   available: bool, machine: str,
                   kernel: tuple[int, int]) -> dict[str, Any] | None:
    """`linux.seccomp` for the container, or None to run without a filter.

    Privileged containers get none unless a custom profile is given; a kernel without
    seccomp runs the default unfiltered (dockerd warns) but refuses a custom profile.
    """
    custom = opts.seccomp not in ("", "builtin", "unconfined")
    if opts.seccomp == "unconfined" or (privileged and not custom):
        return None
    if not available:
        if custom:
            raise SpecError("seccomp is not enabled in your kernel, cannot run a custom "
                            "seccomp profile")
        return None
    if custom:
        return custom_profile(opts.seccomp, machine, caps, kernel)
    return default_profile(machine, caps, kernel)
