"""The layers that confine a worker before it loads any model, and its report of which ones hold.

Defence in depth for the day the scanner's allow-list is wrong: a model that runs code anyway should find no
network, no filesystem beyond its model files and a private temp dir, no secrets, and a kernel that refuses the
calls used to break out. `confine` applies, in this order (each step needs the privileges the next one drops):

1. network and IPC namespaces (`unshare`; inside a new user namespace when not root): no interface but a loopback
   that is down, no System V IPC or POSIX queues shared with the host;
2. `no_new_privs`: no setuid binary or file capability can raise privileges again (and Landlock needs it);
3. Landlock: read and execute on the Python the worker runs (its `sys.path`) and the system's shared libraries,
   read on the model root, read-write on a private temp dir; nothing else (not the hub's database, not HOME), no
   TCP bind or connect, no signals or abstract Unix sockets to processes outside the sandbox;
4. seccomp: a deny-list of system calls a model has no use for (see `_DENIED`).

Landlock and `unshare` are called through ctypes: no maintained library wraps them (the `landlock` PyPI package is
a stub, python-prctl has no Landlock). seccomp goes through libseccomp (`pyseccomp`), which knows every
architecture's system call numbers. The value types here are plain and picklable: the pool builds a
`Confinement`, the worker answers a `StartReport`.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Literal

SandboxMode = Literal["strict", "best-effort", "off"]

LAYERS = ("environment", "network namespace", "ipc namespace", "no_new_privs", "landlock", "seccomp")
"""The protections a worker reports, besides its resource limits; `Confinement.without` names them."""

RESOURCE_LIMITS = "resource limits"


@dataclass(frozen=True, slots=True)
class Confinement:
    """What a worker may touch: built by the pool, applied by the worker before it loads a model.

    `read_exec` (the Python install and libraries) may be read and executed, `read` (the model root) read,
    `read_write` (the worker's private temp dir) read and written. `env_names` are the only environment variables
    the pool gave the worker. `without` names layers not to apply: for finding which layer breaks a model, and
    for tests that simulate a kernel lacking one (the layer is then really missing, and reported so).
    """

    mode: SandboxMode = "best-effort"
    read_exec: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    read_write: tuple[str, ...] = ()
    env_names: frozenset[str] = frozenset()
    without: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Protection:
    """One layer: whether it is active in the worker, and what it covers or why it is missing."""

    name: str
    active: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "active": self.active, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class StartReport:
    """What a worker says once confined, before it loads anything."""

    pid: int
    mode: SandboxMode
    protections: tuple[Protection, ...] = field(default=())

    @property
    def missing(self) -> tuple[Protection, ...]:
        return tuple(p for p in self.protections if not p.active)

    @property
    def complete(self) -> bool:
        """Whether every protection is active: what strict mode requires."""
        return not self.missing

    def summary(self) -> str:
        """One line for a log or an error: what is active, and what is missing and why."""
        active = ", ".join(p.name for p in self.protections if p.active) or "none"
        missing = "; ".join(f"{p.name} ({p.detail})" for p in self.missing)
        return f"active: {active}" + (f"; missing: {missing}" if missing else "")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StartReport:
        """The report a worker sent as `to_json()` (plain data: the pool unpickles nothing else from a worker).

        Raises KeyError or TypeError for a document of another shape.
        """
        protections = tuple(
            Protection(str(p["name"]), p["active"] is True, str(p["detail"])) for p in doc["protections"]
        )
        return cls(int(doc["pid"]), doc["mode"], protections)

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "mode": self.mode,
            "complete": self.complete,
            "protections": [p.to_json() for p in self.protections],
        }


def confine(plan: Confinement) -> list[Protection]:
    """Apply every layer of `plan` not switched off to this process, and say how each went.

    Never raises for a layer the kernel lacks: that layer is reported missing with the reason, and the caller
    (strict mode) decides. Must run while the process has one thread: a user namespace requires it.
    """
    report = [_check_environment(plan.env_names)]
    if plan.mode == "off":
        return report + [Protection(n, False, "switched off (AIPROV_SANDBOX=off)") for n in LAYERS[1:]]
    # Imported first: finding libseccomp runs ldconfig, which Landlock would not let this process execute.
    seccomp = _import_seccomp() if "seccomp" not in plan.without else None
    steps = (
        ("network namespace", _namespaces),
        ("no_new_privs", lambda _: _no_new_privs()),
        ("landlock", _landlock),
        ("seccomp", lambda _: _seccomp(seccomp)),
    )
    for name, step in steps:
        if name in plan.without:
            report.append(Protection(name, False, "left out for this pool (without=...)"))
            if name == "network namespace":
                report.append(Protection("ipc namespace", False, "left out for this pool (without=...)"))
            continue
        try:
            result = step(plan)
        except OSError as e:
            result = Protection(name, False, _why(e))
        report.extend(result if isinstance(result, list) else [result])
    return report


def _why(e: OSError) -> str:
    return f"{e.strerror or e} (errno {errno.errorcode.get(e.errno or 0, e.errno)})"


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> int:
    import ctypes

    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _check_environment(expected: frozenset[str]) -> Protection:
    """Whether the initial environment (/proc/self/environ, not os.environ) holds only what the pool set.

    The parent's own variables must never reach a worker.
    """
    with open("/proc/self/environ", "rb") as f:
        names = {entry.partition(b"=")[0].decode(errors="replace") for entry in f.read().split(b"\0") if entry}
    extra = sorted(names - expected)
    if extra:
        return Protection("environment", False, f"inherited variables: {', '.join(extra)}")
    return Protection("environment", True, f"only {', '.join(sorted(names)) or 'nothing'}, set by the pool")


# --- namespaces --------------------------------------------------------------------------------------------------

_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


def _namespaces(_: Confinement) -> list[Protection]:
    """A network namespace (its loopback is down: 127.0.0.1 is unreachable) and an IPC namespace.

    Root may create them directly; anyone else first enters a user namespace, mapped to their own ids so file
    ownership reads the same inside.
    """
    libc = _libc()
    if os.geteuid() != 0:
        uid, gid = os.geteuid(), os.getegid()
        _check(libc.unshare(_CLONE_NEWUSER))
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    user = "" if os.geteuid() == 0 else " (inside a user namespace)"
    _check(libc.unshare(_CLONE_NEWNET))
    net = Protection("network namespace", True, f"own namespace{user}; {_unreachable()}")
    try:
        _check(libc.unshare(_CLONE_NEWIPC))
        ipc = Protection("ipc namespace", True, "own System V IPC and POSIX message queues")
    except OSError as e:
        ipc = Protection("ipc namespace", False, _why(e))
    return [net, ipc]


def _unreachable() -> str:
    """Proof that the namespace has no usable interface: a TCP connect to the loopback fails at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", 9))
        except OSError as e:
            return f"connecting to 127.0.0.1 fails: {e.strerror or e}"
    raise OSError(errno.EADDRINUSE, "a TCP connection to 127.0.0.1 succeeded inside the new namespace")


# --- no_new_privs ------------------------------------------------------------------------------------------------

_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39


def _no_new_privs() -> Protection:
    libc = _libc()
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    if libc.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        return Protection("no_new_privs", False, "the kernel did not keep the flag")
    return Protection("no_new_privs", True, "execve can never grant privileges (setuid, file capabilities)")


# --- Landlock (uapi/linux/landlock.h) ----------------------------------------------------------------------------

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (allocated after the unification)
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | (1 << 15)
"""The rights that apply to a file (the rest are about directories); a rule on a file may grant only these."""

_FS_HANDLED_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
"""Every filesystem right each ABI knows (4 added network rights, 6 scopes, 7 logging): all handled, so all
denied unless a rule grants them. ABI 5 added IOCTL_DEV."""

_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1

_READ = _FS_READ_FILE | _FS_READ_DIR
_READ_EXEC = _READ | _FS_EXECUTE
_READ_WRITE = (
    _READ | _FS_WRITE_FILE | _FS_TRUNCATE | _FS_MAKE_REG | _FS_MAKE_DIR | _FS_REMOVE_FILE | _FS_REMOVE_DIR
)  # no EXECUTE: a model cannot drop a binary and run it; no MAKE_SOCK/FIFO/device nodes

SYSTEM_LIBRARIES = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")
"""Shared libraries extension modules link against (libgomp, libstdc++, libffi, ...): code, not data."""

_SYSTEM_READ = ("/etc/ld.so.cache", "/sys/devices/system/cpu")
"""Read by the dynamic loader and by BLAS libraries counting CPUs."""


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 if it has none (raises nothing)."""
    try:
        return max(_check(_libc().syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)), 0)
    except OSError:
        return 0


def _landlock(plan: Confinement) -> Protection:
    import ctypes

    abi = landlock_abi()
    if abi < 1:
        return Protection("landlock", False, "the kernel has no Landlock (Linux 5.13+ with lsm=landlock)")
    handled_fs = _FS_HANDLED_BY_ABI[max(v for v in _FS_HANDLED_BY_ABI if v <= abi)]

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0  # handled, no rule: no TCP port at all
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = RulesetAttr(handled_fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # older kernels refuse fields they do not know
    libc = _libc()
    ruleset = _check(libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
    try:
        own_proc = f"/proc/{os.getpid()}"  # this process's own /proc entry (its environ, maps), no other's
        grants = [
            *((p, _READ_EXEC) for p in (*plan.read_exec, *SYSTEM_LIBRARIES)),
            *((p, _READ) for p in (*plan.read, *_SYSTEM_READ, own_proc)),
            *((p, _READ_WRITE) for p in plan.read_write),
            ("/dev/null", _FS_READ_FILE | _FS_WRITE_FILE),
            ("/dev/urandom", _FS_READ_FILE),
        ]
        for path, access in grants:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # not on this system (/lib64 on arm64, say): nothing to grant
            try:
                if not os.path.isdir(path):
                    access &= _FS_FILE_ONLY
                rule = PathBeneath(access & handled_fs, fd)
                _check(
                    libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0)
                )
            finally:
                os.close(fd)
        _check(libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0))
    finally:
        os.close(ruleset)
    extras = [what for what, on in (("no TCP bind or connect", net), ("no signals out", scoped)) if on]
    return Protection(
        "landlock",
        True,
        f"ABI {abi}: read {', '.join(plan.read) or 'nothing'}, write {', '.join(plan.read_write) or 'nothing'}, "
        + ", ".join(["run only the Python install and system libraries", *extras]),
    )


# --- seccomp -----------------------------------------------------------------------------------------------------

_DENIED: dict[str, str] = {
    # why each is refused (EPERM); the rest of the kernel's interface stays open, so libraries keep working
    "ptrace": "reading or steering another process (the parent holds the hub's secrets)",
    "process_vm_readv": "reading another process's memory",
    "process_vm_writev": "writing another process's memory",
    "mount": "changing the filesystem view (a user namespace would allow it)",
    "umount2": "changing the filesystem view",
    "pivot_root": "changing the filesystem view",
    "chroot": "changing the filesystem view",
    "open_tree": "new mount API: changing the filesystem view",
    "move_mount": "new mount API",
    "fsopen": "new mount API",
    "fsmount": "new mount API",
    "fspick": "new mount API",
    "fsconfig": "new mount API",
    "mount_setattr": "new mount API",
    "unshare": "new namespaces after setup: a user namespace hands back capabilities and kernel attack surface",
    "setns": "joining another namespace (the host's network, say)",
    "kexec_load": "replacing the running kernel (a root worker could)",
    "kexec_file_load": "replacing the running kernel",
    "init_module": "loading kernel code (a root worker could)",
    "finit_module": "loading kernel code",
    "delete_module": "unloading kernel code",
    "reboot": "stopping the machine",
    "swapon": "host configuration",
    "swapoff": "host configuration",
    "bpf": "loading programs into the kernel: large attack surface, and tracing of other processes",
    "perf_event_open": "performance counters: side channels and a frequent source of kernel bugs",
    "keyctl": "kernel keyrings are not namespaced and may hold the user's credentials",
    "add_key": "kernel keyrings",
    "request_key": "kernel keyrings",
    "userfaultfd": "makes kernel race exploits reliable; no model needs it",
    "io_uring_setup": "io_uring runs socket and file operations that this filter never sees",
    "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
    "open_by_handle_at": "opens files by handle, bypassing path checks (the 'shocker' container escape)",
    "name_to_handle_at": "file handles for open_by_handle_at",
    "socket": "new sockets of any family, AF_UNIX too: a path-named Unix socket (Docker's, PostgreSQL's) is "
    "reachable through any namespace and Landlock ABI 7 does not guard connect(); the pipe to the pool already "
    "exists and socketpair stays allowed",
}

_CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x80)
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME: clone() may start threads and
processes but not namespaces (as unshare)."""

_TERMINAL_INJECTION = (0x5412, 0x541C)
"""ioctl TIOCSTI and TIOCLINUX: typing commands into the terminal the worker's stderr may be."""


def _import_seccomp() -> Any:
    """The pyseccomp module, or the reason it cannot be used (not installed, or libseccomp.so.2 missing)."""
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError, AttributeError, TypeError) as e:
        return f"pyseccomp with libseccomp is not available: {e}"
    return pyseccomp


def _seccomp(sc: Any) -> Protection:
    if isinstance(sc, str):
        return Protection("seccomp", False, sc)
    eperm = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)  # other architectures' calls (x32, i386) are killed: libseccomp's default
    skipped = [name for name in _DENIED if not _deny(f, sc, eperm, name)]
    for flag in _CLONE_NAMESPACE_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, out of the filter's sight: ENOSYS makes glibc fall back to clone.
    _deny(f, sc, sc.ERRNO(errno.ENOSYS), "clone3")
    for request in _TERMINAL_INJECTION:
        f.add_rule(eperm, "ioctl", sc.Arg(1, sc.EQ, request))
    f.load()
    unknown = f" ({', '.join(skipped)} unknown here)" if skipped else ""
    return Protection(
        "seccomp",
        True,
        f"denies {len(_DENIED) - len(skipped)} system calls{unknown}, namespaces in clone, terminal injection",
    )


def _deny(f: Any, sc: Any, action: int, name: str) -> bool:
    try:
        f.add_rule(action, name)
    except (OSError, ValueError, RuntimeError):
        return False  # a call this architecture does not have
    return True
