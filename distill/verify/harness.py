"""The harness that runs inside the code sandbox (verify/sandbox.py), as `python -I harness.py
DIR CONFIG`: it imports nothing of distill, since the project is not in the sandbox.

In order: drop to the sandbox's own uid when started as root (so the process limit applies),
set the resource limits, read the proof token from its pipe and close it, run DIR/main.py, then
DIR/tests.py (if any) in the program's namespace with its asserts made strict, and only then
write the token to the proof file. A program that ends the process early (`sys.exit(0)`,
`os._exit(0)`, an `atexit` hook) never reaches that write: a test passes on the token, not on
an exit status.

Strict asserts: every call in an assert must return plain data (builtin types and numpy values,
in containers of them), except calls of what the tests define themselves; a comparison of
values of different types defined in Python is false. An object whose `__eq__`, `__bool__`,
`__abs__` … always agrees cannot pass.
"""

import ast
import json
import os
import resource
import sys

HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: the type was made by a class statement, not in C


def _plain(value, depth=0) -> bool:
    kind = type(value)
    if kind.__flags__ & HEAPTYPE or depth > 50:
        return False
    if kind in (list, tuple, set, frozenset):
        return all(_plain(v, depth + 1) for v in value)
    if kind is dict:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    dtype = getattr(value, "dtype", None)  # numpy arrays of objects may hold anything
    return not (dtype is not None and getattr(dtype, "hasobject", False))


def _result(value):
    if not _plain(value):
        raise AssertionError(f"a value of type {type(value).__name__} is not plain data")
    return value


def _compare(ops, *values):
    import operator

    table = {"Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt, "LtE": operator.le,
             "Gt": operator.gt, "GtE": operator.ge, "In": lambda a, b: a in b,
             "NotIn": lambda a, b: a not in b, "Is": operator.is_, "IsNot": operator.is_not}
    for op, a, b in zip(ops, values, values[1:]):
        if op not in ("Is", "IsNot") and not (_plain(a) and _plain(b)) and type(a) is not type(b):
            return False
        outcome = table[op](a, b)
        if not _plain(outcome):
            return False
        if not outcome:
            return outcome
    return True


def _truth(value):
    if not _plain(value):
        raise AssertionError(f"an assert on a value of type {type(value).__name__}")
    return value


class _Strict(ast.NodeTransformer):
    """Rewrites the tests' asserts; `own` are the names the tests define at the top level."""

    def __init__(self, own: set, prefix: str) -> None:
        self.own, self.prefix, self.inside = own, prefix, 0

    def _call(self, name, args):
        return ast.Call(ast.Name(self.prefix + name, ast.Load()), args, [])

    def visit_Assert(self, node):
        self.inside += 1
        test = self.visit(node.test)
        self.inside -= 1
        return ast.copy_location(ast.Assert(self._call("truth", [test]), node.msg), node)

    def visit_Attribute(self, node):
        if self.inside and isinstance(node.value, ast.Call):  # a method's receiver may be any object
            node.value = self.generic_visit(node.value)
            return node
        return self.generic_visit(node)

    def visit_Call(self, node):
        node = self.generic_visit(node)
        if not self.inside or (isinstance(node.func, ast.Name) and node.func.id in self.own):
            return node
        return ast.copy_location(self._call("result", [node]), node)

    def visit_Compare(self, node):
        node = self.generic_visit(node)
        if not self.inside:
            return node
        ops = ast.Tuple([ast.Constant(type(op).__name__) for op in node.ops], ast.Load())
        return ast.copy_location(self._call("compare", [ops, node.left, *node.comparators]), node)


def _strict(source: str, prefix: str):
    tree = ast.parse(source, "tests.py")
    own = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    own |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    return compile(ast.fix_missing_locations(_Strict(own, prefix).visit(tree)), "tests.py", "exec")


def _own_tasks(uid: int) -> int:
    """Tasks of this uid in the sandbox's /proc: RLIMIT_NPROC counts them all."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return count


def _limit(config: dict) -> None:
    if os.getuid() == 0 and config.get("uid"):  # root in the sandbox: become nobody in particular
        os.setgroups([])
        os.setresgid(config["uid"], config["uid"], config["uid"])
        os.setresuid(config["uid"], config["uid"], config["uid"])
    cpu = config["cpu_seconds"]
    # CPU: SIGXCPU at the limit (read as a timeout), SIGKILL a second later
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for which, value in [(resource.RLIMIT_AS, config["memory_mb"] << 20),
                         (resource.RLIMIT_FSIZE, config["file_mb"] << 20),
                         (resource.RLIMIT_NOFILE, config["open_files"]),
                         (resource.RLIMIT_NPROC, _own_tasks(os.getuid()) + config["processes"]),
                         (resource.RLIMIT_CORE, 0)]:
        resource.setrlimit(which, (value, value))


_BLOCKED = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "os.fork", "os.forkpty",
            "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "ctypes.dlopen",
            "ctypes.dlsym", "ctypes.call_function", "os.kill", "os.killpg", "pty.spawn"}


def _audit(scratch: str) -> None:
    """The unsafe mode's only wall against code that tries from Python (no kernel sandbox)."""

    def inside(path) -> bool:
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(scratch + os.sep)
        except TypeError:
            return False

    def hook(event, args):
        if event in _BLOCKED:
            raise PermissionError(f"{event} is not allowed in the sandbox")
        if event == "open" and args and args[1] is not None and any(c in str(args[1]) for c in "wax+"):
            if not inside(args[0]):
                raise PermissionError(f"writing {args[0]!r} is not allowed in the sandbox")
        elif event == "os.open" and args and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
            if not inside(args[0]):
                raise PermissionError(f"writing {args[0]!r} is not allowed in the sandbox")

    sys.addaudithook(hook)


def main() -> None:
    folder, config = sys.argv[1], json.loads(sys.argv[2])
    _limit(config)
    token = os.read(config["token_fd"], 64)
    os.close(config["token_fd"])
    with open(os.path.join(folder, "main.py")) as f:
        program = compile(f.read(), "main.py", "exec")
    tests = None
    if os.path.exists(os.path.join(folder, "tests.py")):
        with open(os.path.join(folder, "tests.py")) as f:
            tests = _strict(f.read(), config["prefix"])
    import builtins

    clean = dict(vars(builtins))  # the tests get these back, whatever the program rebinds
    if config.get("audit"):
        _audit(os.path.realpath(os.getcwd()))
    space = {"__name__": "__main__", "__builtins__": builtins}
    del builtins
    exec(program, space)
    if tests is not None:
        space["__builtins__"] = clean
        prefix = config["prefix"]
        space.update({prefix + "result": _result, prefix + "compare": _compare, prefix + "truth": _truth})
        exec(tests, space)
    os.write(config["proof_fd"], token)  # every statement ran to the end: the proof
    # then the interpreter ends as usual: threads the program started finish their output first


if __name__ == "__main__":
    main()
