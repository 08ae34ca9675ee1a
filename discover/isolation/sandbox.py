"""Confinement of the worker process that runs untrusted candidate programs.

A worker (see ``discover.isolation.executor``) confines itself once, right after it starts and before
it imports any heavy library or starts any thread, and then stays confined for its whole
life. Three layers, from hard to soft:

1. Resource limits (``set_resource_limits``): ``RLIMIT_DATA`` caps the heap and every
   private writable mapping, so an oversized allocation fails with ``MemoryError`` instead
   of taking the machine down; ``RLIMIT_AS`` is not used because JAX/XLA reserves far more
   address space than it touches (measured: 1.5 GB of address space for 0.2 GB of data
   after ``jnp.zeros(10)``). ``RLIMIT_CORE`` is 0, so a crash writes no core file.

2. Kernel confinement (``confine``), Linux only, each part used where the kernel offers
   it and reported by name otherwise:
   - a private, empty network namespace (``unshare(CLONE_NEWNET)``, needs root);
   - Landlock (Linux >= 5.13): writes, deletions, renames, links and device nodes are
     allowed only beneath the worker's scratch directory, the harness directories (the
     engine's cache) and ``/dev/null``; TCP bind/connect are denied (ABI >= 4), and
     signals to processes outside the worker are denied (ABI >= 6). Reads stay allowed.
   - seccomp (x86-64): ``execve``, ``fork``/``vfork``/``clone`` of a process (threads are
     allowed), ``socket``, ``ptrace``, ``kill`` of any process but the worker itself,
     raising resource limits, namespaces, mounts, module loading, ``io_uring`` and a few
     other administrative calls fail with ``EPERM``.
   These are enforced by the kernel on the whole process, harness included, and cannot be
   lifted from inside. They also stop what the audit layer cannot see (raw file
   descriptors, ``dir_fd`` tricks, code run from a C callback).

3. An audit hook (``discover.isolation.audit.install_audit_guard``, PEP 578) that tells *who* asks: it inspects the
   Python call stack and polices only operations made while candidate code is on the
   stack, so the harness (JAX, OpenSpiel, the evaluator's cache writes) keeps working.
   Candidate code is any frame whose code was compiled from a string (a file name that is
   not an absolute path, e.g. ``"<candidate>"``; ``<frozen ...>`` modules excepted) or from a
   file under the scratch directory. Spaces must therefore compile a candidate's source
   under such a name, never under the path of an installed file. A violation is written to
   the worker's alarm pipe and the worker ends itself on the spot with ``os._exit``: an
   exception could be caught by the candidate, an exit cannot, so the first violation is
   what the executor reports, whatever the candidate would have done next. Policed:
   - processes: ``os.system``, ``os.exec*``, ``os.spawn*``, ``os.posix_spawn*``,
     ``os.fork``, ``os.forkpty``, ``subprocess.Popen``, ``pty.spawn``, ``os.killpg``,
     ``os.kill`` of another process (killing itself is allowed: it is a crash);
   - network: every ``socket.*`` event and the ``urllib``/``http``/``ftplib``/``smtplib``/...
     connection events;
   - files: opening for writing, creating, deleting, renaming, truncating, changing modes
     or times outside the worker's scratch directory (``/dev/null`` excepted; the
     scratch directory holds only the running job's directory and is emptied after every
     job); creating symbolic or hard links;
   - ``ctypes`` (``dlopen``, ``dlsym``, raw memory access), ``resource.setrlimit``;
   - introspection that could reach the harness's frames or rewrite code, when done by the
     candidate's own line: ``sys._getframe``, ``sys._current_frames``, ``gc.get_objects``/
     ``get_referrers``/``get_referents``, reading ``tb_frame``/``gi_frame``/``cr_frame``/
     ``ag_frame``, ``sys.settrace``/``setprofile``, ``sys.addaudithook``, ``code.__new__``
     (``code.replace``), ``marshal.loads``, compiling under an installed file's name;
   - importing ``ctypes``, ``socket``, ``ssl``, ``subprocess``, ``multiprocessing`` or ``pty``
     (and their C halves) directly from candidate code.
   The hook keeps no switch that could be flipped: it holds only constants captured at
   install time (C functions, the scratch path, the alarm descriptor), never reads module
   globals that a candidate could rebind, and never calls an object the candidate made.

After each job the worker also compares the functions and classes of the harness modules
(``discover``, ``evaluators``, ``search_spaces``, the space's own package, ``builtins``,
``math``, ``numpy``, ``jax``, ``jax.numpy``), and the methods and properties of the classes
defined in the project's packages, with a snapshot taken before it (``discover.isolation.audit.HarnessSnapshot``): a
candidate that rebinds one of them, e.g. to fake its own score, is reported as forbidden
(Python raises no audit event for assigning a module or class attribute). Other
process-wide state a candidate may change (``jax.config``, environment variables, the
recursion limit, threads left running) makes the worker replace itself after the job
(``discover.isolation.audit.global_state``); NumPy's error state and the warning filters are simply restored.

Known limits, stated plainly:
- Candidate code runs in the same interpreter as the evaluator that scores it. A candidate
  written *deliberately* to cheat can still fake its score, e.g. by editing the
  evaluator's in-memory arrays, by patching and restoring within its own run, or by
  writing a forged result to the worker's result pipe with ``os.write`` (raw descriptor
  writes are not audited). Isolation protects the machine and the run from broken or
  careless code and from crude escapes; it does not make a score tamper-proof. Re-scoring
  the best programs in fresh processes on held-out tasks is the check on that.
- The stack test can be evaded by arranging for harness-only frames to run an operation
  later (a C callback, ``atexit``, a finalizer holding ``functools.partial(os.system, ...)``)
  or by obtaining a frame through a harness helper (``inspect.currentframe``). The kernel
  layer still blocks processes, sockets and writes outside the allowed directories, but
  the engine's cache directory is writable by the kernel's rules, so such a candidate
  could write there; and without the kernel layer (non-Linux, old kernels) only the audit
  layer remains.
- Python 3.11 raises no audit event for starting a thread, for ``os.write`` or for calling
  a ``ctypes`` function that the harness already resolved (``ctypes.pythonapi`` ...);
  threads are detected after the job (the worker then replaces itself), not prevented.
- A write by harness code made while candidate code is on the stack is refused like the
  candidate's own, e.g. JAX's persistent compilation cache (off by default) when the
  candidate itself calls ``jax.jit``; harness writes belong outside candidate calls.
- Harness code generated from strings at run time (``dataclasses``, ``namedtuple``) counts
  as candidate code while it is on the stack; it never performs policed operations in
  practice, but a space that does so from such code would be refused.
- Reading files is not restricted (the candidate can read what the worker's user can);
  the environment passed to workers is stripped of variables that look like credentials.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import platform
import resource
import struct
import sys
from typing import Any, Iterable, Mapping

# Exit status of a worker that ended itself on a forbidden operation. Only a message on
# the alarm pipe makes a job "forbidden"; the status is for the log.
FORBIDDEN_EXIT = 86


# Environment variables whose names contain one of these never reach a worker.
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a worker may do.

    Attributes:
      scratch: directory the candidate may write beneath (the worker runs each job in a
        fresh subdirectory of it); absolute.
      harness_dirs: directories the harness, not the candidate, may also write beneath
        (the engine's cache); absolute, existing.
      memory_limit_mb: cap on the worker's data segment (heap and anonymous mappings).
    """

    scratch: str
    harness_dirs: tuple[str, ...] = ()
    memory_limit_mb: int = 4096

    def __post_init__(self):
        for d in (self.scratch, *self.harness_dirs):
            if not os.path.isabs(d):
                raise ValueError(f"sandbox directories must be absolute paths, got {d!r}")
        if self.memory_limit_mb < 1:
            raise ValueError(f"memory_limit_mb must be positive, got {self.memory_limit_mb}")


# ----------------------------------------------------------------------------- pure helpers
def normalize_path(path: str, cwd: str) -> str:
    """``path`` made absolute against ``cwd`` with ``.``, ``..`` and repeated slashes removed,
    lexically (symbolic links are not followed: creating them is policed separately)."""
    if not path.startswith("/"):
        path = cwd + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def is_beneath(path: str, root: str) -> bool:
    """Whether normalised absolute ``path`` is ``root`` or inside it."""
    return path == root or path.startswith(root + "/") or root == "/"


def is_candidate_file(filename: str, scratch: str) -> bool:
    """Whether code compiled under ``filename`` is candidate code: compiled from a string
    (a name that is not an absolute path, ``<frozen ...>`` modules excepted) or from a file
    beneath the scratch directory."""
    if filename.startswith("/"):
        return is_beneath(filename, scratch)
    return not filename.startswith("<frozen ")


def clean_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the variables that look like credentials (API keys, tokens ...)."""
    return {k: v for k, v in env.items() if not any(m in k.upper() for m in _SECRET_MARKERS)}


# ----------------------------------------------------------------------------- layer 1: limits
def set_resource_limits(memory_limit_mb: int) -> None:
    """Caps the data segment at ``memory_limit_mb`` and disables core files."""
    limit = int(memory_limit_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# ----------------------------------------------------------------------------- layer 2: kernel
_libc: Any = None


def _libc_call(function: str, *args) -> int:
    """Calls a C library function with integer or pointer arguments; raises OSError on -1."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    # Variadic calls (syscall) read every argument as a long: pass them as such.
    args = tuple(a if isinstance(a, ctypes._SimpleCData) or not isinstance(a, int) else ctypes.c_long(a)
                 for a in args)
    r = getattr(_libc, function)(*args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _syscall(*args) -> int:
    return _libc_call("syscall", *args)


def _prctl(option: int, arg: int = 0) -> None:
    _libc_call("prctl", option, arg, 0, 0, 0)


_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_CLONE_NEWNET = 0x40000000
_CLONE_THREAD = 0x00010000


def die_with_parent(signal_number: int = 9) -> None:
    """Asks the kernel to send ``signal_number`` to this process when its parent exits, so a
    busy worker never outlives an executor that was killed. Linux only; no-op elsewhere."""
    if sys.platform == "linux":
        _prctl(_PR_SET_PDEATHSIG, signal_number)


def _private_network() -> str:
    if sys.platform != "linux":
        return "unavailable (not Linux)"
    try:
        _libc_call("unshare", _CLONE_NEWNET)
    except OSError as e:
        return f"unavailable ({e.strerror})"
    return "private namespace"


# Landlock (Documentation/userspace-api/landlock.rst); the syscall numbers are the same on
# every architecture.
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446
_LL_VERSION = 1
_LL_RULE_PATH_BENEATH = 1
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13          # ABI 2
_FS_TRUNCATE = 1 << 14       # ABI 3
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1         # ABI 4
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1     # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(writable_dirs: Iterable[str]) -> str:
    if sys.platform != "linux":
        return "unavailable (not Linux)"
    try:
        abi = _syscall(_LL_CREATE, None, 0, _LL_VERSION)
    except OSError as e:
        return f"unavailable ({e.strerror})"
    handled = (_FS_EXECUTE | _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE_CHAR
               | _FS_MAKE_DIR | _FS_MAKE_REG | _FS_MAKE_SOCK | _FS_MAKE_FIFO | _FS_MAKE_BLOCK
               | _FS_MAKE_SYM)
    if abi >= 2:
        handled |= _FS_REFER
    if abi >= 3:
        handled |= _FS_TRUNCATE
    attr = _RulesetAttr(handled_access_fs=handled)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        size = 24
    ruleset = _syscall(_LL_CREATE, ctypes.byref(attr), size, 0)
    try:
        # Everything that writes, except device nodes (as root, a character device would
        # reach raw memory or disks).
        dir_access = handled & ~(_FS_EXECUTE | _FS_MAKE_CHAR | _FS_MAKE_BLOCK)
        rules = [(d, dir_access) for d in writable_dirs]
        rules.append(("/dev/null", handled & (_FS_WRITE_FILE | _FS_TRUNCATE)))
        for path, access in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
                _syscall(_LL_ADD_RULE, ruleset, _LL_RULE_PATH_BENEATH, ctypes.byref(rule), 0)
            finally:
                os.close(fd)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        _syscall(_LL_RESTRICT, ruleset, 0)
    finally:
        os.close(ruleset)
    return f"landlock ABI {abi}"


# seccomp-bpf (Documentation/userspace-api/seccomp_filter.rst), x86-64 syscall numbers.
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_X86_64_DENY = {
    "socket": 41, "socketpair": 53, "fork": 57, "vfork": 58, "execve": 59, "ptrace": 101,
    "pivot_root": 155, "adjtimex": 159, "setrlimit": 160, "chroot": 161, "acct": 163,
    "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
    "init_module": 175, "delete_module": 176, "tkill": 200, "clock_settime": 227,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, "pidfd_send_signal": 424, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434,
    "pidfd_getfd": 438, "mount_setattr": 442,
}
_NR_CLONE, _NR_CLONE3, _NR_KILL, _NR_TGKILL, _NR_PRLIMIT64 = 56, 435, 62, 234, 302
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000


def seccomp_program(pid: int) -> bytes:
    """The BPF filter (``struct sock_filter[]``) that ``confine`` installs on x86-64:
    denied calls fail with EPERM; ``clone`` is allowed for threads only; ``clone3`` fails
    with ENOSYS so that the C library falls back to ``clone``; ``kill``/``tgkill`` only
    reach ``pid``; ``prlimit64`` may read limits but not set them."""
    # Instructions as (code, jump-if-true label, jump-if-false label, k); labels resolve to
    # relative offsets below.
    prog: list[tuple[int, Any, Any, int]] = [
        (_LD_W_ABS, 0, 0, 4),                                  # seccomp_data.arch
        (_JEQ_K, 0, "kill", _AUDIT_ARCH_X86_64),
        (_LD_W_ABS, 0, 0, 0),                                  # seccomp_data.nr
        (_JGE_K, "deny", 0, _X32_BIT),
    ]
    prog += [(_JEQ_K, "deny", 0, nr) for nr in sorted(_X86_64_DENY.values())]
    prog += [
        (_JEQ_K, "clone", 0, _NR_CLONE),
        (_JEQ_K, "enosys", 0, _NR_CLONE3),
        (_JEQ_K, "own_pid", 0, _NR_KILL),
        (_JEQ_K, "own_pid", 0, _NR_TGKILL),
        (_JEQ_K, "prlimit", 0, _NR_PRLIMIT64),
        (_RET_K, 0, 0, _RET_ALLOW),
        ("clone",),
        (_LD_W_ABS, 0, 0, 16),                                 # args[0] (flags), low word
        (_JSET_K, "allow", "deny", _CLONE_THREAD),
        ("own_pid",),
        (_LD_W_ABS, 0, 0, 16),                                 # args[0] (pid), low word
        (_JEQ_K, "allow", "deny", pid),
        ("prlimit",),
        (_LD_W_ABS, 0, 0, 16 + 2 * 8),                         # args[2] (new limit), low word
        (_JEQ_K, 0, "deny", 0),
        (_LD_W_ABS, 0, 0, 16 + 2 * 8 + 4),                     # high word
        (_JEQ_K, "allow", "deny", 0),
        ("allow",), (_RET_K, 0, 0, _RET_ALLOW),
        ("deny",), (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        ("enosys",), (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        ("kill",), (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    labels, code = {}, []
    for ins in prog:
        if len(ins) == 1:
            labels[ins[0]] = len(code)
        else:
            code.append(ins)
    out = bytearray()
    for i, (op, jt, jf, k) in enumerate(code):
        rel = [labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= r < 256 for r in rel):
            raise ValueError("seccomp program jump out of range")
        out += struct.pack("=HBBI", op, rel[0], rel[1], k)
    return bytes(out)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp() -> str:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return "unavailable (not Linux x86-64)"
    program = seccomp_program(os.getpid())
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len=len(program) // 8, filter=ctypes.addressof(buf))
    try:
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        _libc_call("prctl", _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)
    except OSError as e:
        return f"unavailable ({e.strerror})"
    return "seccomp filter"


def confine(policy: Policy) -> dict[str, str]:
    """Applies the kernel layer to the calling process, for good. Call it while the
    process has a single thread (Landlock binds only the calling thread and those it
    creates later). Returns what was applied, by layer, e.g.
    ``{"network": "private namespace", "filesystem": "landlock ABI 7", "syscalls": "seccomp filter"}``;
    an unavailable layer is reported, not raised."""
    report = {"network": _private_network()}
    try:
        report["filesystem"] = _landlock([policy.scratch, *policy.harness_dirs])
    except OSError as e:
        report["filesystem"] = f"unavailable ({e.strerror})"
    report["syscalls"] = _seccomp()
    return report
