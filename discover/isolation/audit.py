"""Layer 3 of the worker's confinement: the audit hook that polices candidate code, and the
check after each job that the candidate left the harness as it found it.

``install_audit_guard`` adds a ``sys.addaudithook`` hook (and a guard on ``import``) that
sees every process, network, file-write, introspection and module event; events raised by
code compiled as a candidate (``<candidate>``) that break the ``discover.isolation.sandbox.Policy``
end the worker with one ``FORBIDDEN`` line on the alarm pipe. ``HarnessSnapshot``,
``global_state`` and ``RestorableState`` let the worker tell, after a job, whether the
candidate rebound a harness function or changed process-wide state. The kernel layers
(resource limits, network namespace, Landlock, seccomp) are ``discover.isolation.sandbox``'s, whose
docstring describes all three layers and what they do not cover.
"""

from __future__ import annotations

import builtins
import os
import sys
import types
import warnings
from pathlib import Path, PosixPath, PurePosixPath
from typing import Any, Iterable, Mapping

from discover.isolation.sandbox import FORBIDDEN_EXIT, Policy, normalize_path

_PROCESS_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "subprocess.Popen", "pty.spawn", "os.startfile", "os.killpg",
})
_NETWORK_EVENTS = frozenset({
    "urllib.Request", "http.client.connect", "http.client.send", "ftplib.connect",
    "smtplib.connect", "smtplib.send", "poplib.connect", "imaplib.open", "nntplib.connect",
    "telnetlib.Telnet.open", "webbrowser.open",
})
_NETWORK_PREFIXES = frozenset({"socket", "ssl"})
# (event, index of the path argument, index of its dir_fd argument or -1)
_PATH_EVENTS = {
    "os.remove": (0, 1), "os.rmdir": (0, 1), "os.mkdir": (0, 2), "os.truncate": (0, -1),
    "os.chmod": (0, 2), "os.chown": (0, 3), "os.utime": (0, 3), "os.chflags": (0, -1),
    "os.lchflags": (0, -1), "os.lchmod": (0, -1), "os.setxattr": (0, -1),
    "os.removexattr": (0, -1), "shutil.rmtree": (0, 1),
}
_LINK_EVENTS = frozenset({"os.symlink", "os.link"})
# Operations that are forbidden when the candidate's own line performs them (the harness,
# e.g. JAX filtering a traceback or logging finding its caller, may do the same).
_INTROSPECTION_EVENTS = frozenset({
    "sys._getframe", "sys._current_frames", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "sys.settrace", "sys.setprofile", "sys.addaudithook", "code.__new__",
    "marshal.loads", "marshal.load",
})
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
FORBIDDEN_MODULES = frozenset({
    "ctypes", "_ctypes", "socket", "_socket", "ssl", "_ssl", "subprocess", "_posixsubprocess",
    "multiprocessing", "_multiprocessing", "pty",
})
_IMPORTLIB_FILES = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


# ----------------------------------------------------------------------------- layer 3: audit
def install_audit_guard(policy: Policy, alarm_fd: int) -> None:
    """Installs the audit hook (and a guard on ``import``) that polices candidate code; see
    the module docstring. On the first violation the hook writes one line
    ``FORBIDDEN <event>: <detail>`` to ``alarm_fd`` and ends the process with
    ``FORBIDDEN_EXIT``. Permanent: audit hooks cannot be removed."""
    # Everything the hook uses is bound here, once: rebinding os.getcwd or builtins.ascii
    # later changes nothing for it.
    scratch = normalize_path(policy.scratch, "/")
    my_pid = os.getpid()
    getframe = sys._getframe
    getcwd = os.getcwd
    readlink = os.readlink
    write = os.write
    exit_now = os._exit
    get_ident = __import__("_thread").get_ident
    ascii_ = builtins.ascii
    str_ = str
    bytes_decode = bytes.decode
    path_types = (PosixPath, PurePosixPath, Path)
    busy: set[int] = set()

    def candidate(filename) -> bool:
        if type(filename) is not str_:
            return True
        if filename.startswith("/"):
            return filename == scratch or filename.startswith(scratch + "/")
        return not filename.startswith("<frozen ")

    def on_stack(frame) -> bool:
        while frame is not None:
            if candidate(frame.f_code.co_filename):
                return True
            frame = frame.f_back
        return False

    def violate(event: str, detail) -> None:
        text = ascii_(f"{event}: {detail}" if detail is not None else event)[1:-1][:1000]
        try:
            write(alarm_fd, b"FORBIDDEN " + text.encode() + b"\n")
        finally:
            exit_now(FORBIDDEN_EXIT)

    def as_text(path):
        """A plain str for a path argument, or None when it is a descriptor; raises
        ValueError for an object whose conversion would run code we do not own."""
        t = type(path)
        if t is str_:
            return path
        if t is bytes:
            return bytes_decode(path, "utf-8", "surrogateescape")
        if t is int:
            return None
        if t in path_types:
            return str_(path)
        raise ValueError

    def outside(path, dir_fd=None) -> bool:
        """Whether writing ``path`` would touch anything outside the scratch directory."""
        try:
            text = as_text(path)
        except ValueError:
            return True
        if text is None:
            return False              # an already open descriptor: checked when opened
        base = getcwd()
        if type(dir_fd) is int and dir_fd >= 0:
            try:
                base = readlink(f"/proc/self/fd/{dir_fd}")
            except OSError:
                return True
        full = normalize_path(text, base)
        return not (full == "/dev/null" or full == scratch or full.startswith(scratch + "/"))

    def check(event: str, args, frame) -> None:
        if event == "open":
            flags = args[2] if len(args) > 2 else 0
            if type(flags) is int and flags & _WRITE_FLAGS and on_stack(frame) and outside(args[0]):
                violate("open for writing", args[0] if type(args[0]) in (str_, bytes, int) else "?")
            return
        if event == "object.__getattr__":
            if args[1] in _FRAME_ATTRIBUTES and candidate(frame.f_code.co_filename):
                violate(event, args[1])
            return
        if event in _INTROSPECTION_EVENTS:
            if candidate(frame.f_code.co_filename):
                violate(event, None)
            return
        if event in _PATH_EVENTS:
            i, j = _PATH_EVENTS[event]
            dir_fd = args[j] if 0 <= j < len(args) else None
            if on_stack(frame) and outside(args[i], dir_fd):
                violate(event, args[i] if type(args[i]) in (str_, bytes, int) else "?")
            return
        if event == "os.rename":
            if on_stack(frame) and (outside(args[0], args[2]) or outside(args[1], args[3])):
                violate(event, f"{args[0]!s} -> {args[1]!s}" if type(args[0]) is str_ else None)
            return
        if event in _LINK_EVENTS:
            if on_stack(frame):
                violate(event, None)
            return
        if event == "os.kill":
            if not (type(args[0]) is int and args[0] == my_pid) and on_stack(frame):
                violate(event, f"pid {args[0]}" if type(args[0]) is int else None)
            return
        if event in _PROCESS_EVENTS or event in _NETWORK_EVENTS:
            if on_stack(frame):
                violate(event, None)
            return
        if event == "compile":
            name = args[1] if len(args) > 1 else None
            if (type(name) is str_ and name.startswith("/") and not candidate(name)
                    and candidate(frame.f_code.co_filename)):
                violate("compile under an installed file's name", name)
            return
        if event == "import":
            name = args[0]
            if type(name) is str_ and name.partition(".")[0] in FORBIDDEN_MODULES:
                while frame is not None and frame.f_code.co_filename in _IMPORTLIB_FILES:
                    frame = frame.f_back
                if frame is not None and candidate(frame.f_code.co_filename):
                    violate(event, name)
            return
        prefix = event.partition(".")[0]
        if prefix == "ctypes" or prefix == "resource":
            if on_stack(frame):
                violate(event, None)
        elif prefix in _NETWORK_PREFIXES:
            if on_stack(frame):
                violate(event, None)

    def hook(event, args):
        ident = get_ident()
        if ident in busy:
            return
        busy.add(ident)
        try:
            try:
                frame = getframe(1)
            except ValueError:
                return
            check(event, args, frame)
        finally:
            busy.discard(ident)

    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and type(name) is str_ and name.partition(".")[0] in FORBIDDEN_MODULES:
            if candidate(getframe(1).f_code.co_filename):
                violate("import", name)
        return real_import(name, globals, locals, fromlist, level)

    sys.addaudithook(hook)
    builtins.__import__ = guarded_import


# ----------------------------------------------------------------------------- after each job
_WATCHED_EXACT = ("builtins", "math", "numpy", "jax", "jax.numpy")
_WATCHED_PACKAGES = ("discover", "evaluators", "search_spaces")


_METHOD_TYPES = (types.FunctionType, property, staticmethod, classmethod)


class HarnessSnapshot:
    """The functions and classes defined by the harness modules, and the methods and
    properties of the project's classes, at one moment, to tell whether a job rebound any
    of them (``replaced``).

    Args:
      extra_packages: more top-level packages whose modules and classes to watch (the
        package of the space being evaluated).
    """

    def __init__(self, extra_packages: Iterable[str] = ()):
        packages = set(_WATCHED_PACKAGES) | set(extra_packages)
        # (namespace dict, attribute) -> object; each namespace keeps its label for reports.
        self._objects: list[tuple[str, dict, str, Any]] = []
        for name, mod in list(sys.modules.items()):
            own = name.partition(".")[0] in packages
            if not (own or name in _WATCHED_EXACT) or type(mod) is not types.ModuleType:
                continue
            for attr, value in list(vars(mod).items()):
                if not isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
                    continue
                if name != "builtins" and getattr(value, "__module__", None) != name:
                    continue               # imported from elsewhere: watched there
                self._objects.append((name, vars(mod), attr, value))
                if own and isinstance(value, type):
                    label = f"{name}.{attr}"
                    for key, member in list(vars(value).items()):
                        if isinstance(member, _METHOD_TYPES):
                            self._objects.append((label, value.__dict__, key, member))

    def replaced(self) -> list[str]:
        """``module.attr`` / ``module.Class.attr`` names now bound to another object."""
        missing = object()
        return [f"{label}.{attr}" for label, namespace, attr, value in self._objects
                if namespace.get(attr, missing) is not value]


def global_state() -> dict[str, Any]:
    """Process-wide settings a candidate could change to affect the next job in the same
    worker: ``jax.config`` values, environment variables, the recursion limit, the
    Python threads alive."""
    state: dict[str, Any] = {
        "environ": dict(os.environ),
        "recursion_limit": sys.getrecursionlimit(),
        "threads": len(sys._current_frames()),
    }
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            state["jax.config"] = dict(jax.config.values)
        except Exception:  # noqa: BLE001 - a JAX without this attribute just isn't compared
            pass
    return state


def changed_state(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Names of the ``global_state`` entries that differ (entries present in both)."""
    return [k for k in before if k in after and before[k] != after[k]]


class RestorableState:
    """NumPy's floating-point error state and the warning filters, saved before a job and
    put back after it (cheaper than replacing the worker for a candidate that calls
    ``np.seterr`` or ``warnings.simplefilter``)."""

    def __init__(self):
        np = sys.modules.get("numpy")
        self._np_err = np.geterr() if np is not None else None
        self._filters = list(warnings.filters)

    def restore(self) -> None:
        np = sys.modules.get("numpy")
        if np is not None and self._np_err is not None:
            np.seterr(**self._np_err)
        if warnings.filters != self._filters:
            warnings.filters[:] = self._filters
            warnings._filters_mutated()  # type: ignore[attr-defined]
