"""A seccomp filter for the code sandbox (bwrap --seccomp): system calls no test program needs,
that widen what a kernel bug could be reached through, fail with EPERM.

Denied: new namespaces (unshare, setns, clone with a CLONE_NEW* flag; as root the sandbox has
no user namespace of its own for bwrap's --disable-userns to hold), mounts, ptrace and reading
or writing other processes' memory, keyrings, BPF, perf events, userfaultfd, io_uring, module
and kexec loading, swap, reboot, accounting, quotas, file handles; clone3 fails with ENOSYS, as
in Docker's and Flatpak's profiles, so that the C library falls back to clone, whose flags a
filter can read. Calls of another ABI (32-bit `int 0x80`, x32) are denied whole: their numbers
differ. x86_64 only, where it was tested; elsewhere the sandbox runs without a filter
(docs/security.md).
"""

from __future__ import annotations

import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
CLONE = 56
CLONE3 = 435
CLONE_NEW = 0x7E020000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
DENIED = {  # x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
    "ptrace": 101, "acct": 163, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
    "pivot_root": 155, "init_module": 175, "delete_module": 176, "quotactl": 179, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
}

# classic BPF: opcodes and seccomp's return values (linux/filter.h, linux/seccomp.h)
LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
ALLOW = 0x7FFF0000
DENY, NOSYS = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
NR, ARCH, ARG0 = 0, 4, 16  # offsets in struct seccomp_data (arg0's low 32 bits, little-endian)


def program() -> bytes | None:
    """The compiled filter for this machine, or None where there is none."""
    if platform.machine() != "x86_64":
        return None
    code: list[tuple[int, int, int, int]] = []

    def op(kind: int, k: int, jt: int = 0, jf: int = 0) -> None:
        code.append((kind, jt, jf, k))

    body = [(number, DENY) for number in sorted(DENIED.values())] + [(CLONE3, NOSYS)]
    # ld arch, jeq arch, ld nr, jge x32, a jeq per call in body, jeq clone, ret allow, then the
    # clone check (ld arg0, jset, ret allow), ret deny, ret nosys
    size = 4 + len(body) + 2 + 5
    deny_at, nosys_at, clone_at = size - 2, size - 1, size - 5

    def jump(target: int) -> int:  # BPF jumps count from the next instruction
        return target - (len(code) + 1)

    op(LD_ABS, ARCH)
    op(JEQ, AUDIT_ARCH_X86_64, 0, jump(deny_at))
    op(LD_ABS, NR)
    op(JGE, X32_BIT, jump(deny_at), 0)
    for number, verdict in body:
        op(JEQ, number, jump(deny_at if verdict == DENY else nosys_at), 0)
    op(JEQ, CLONE, jump(clone_at), 0)
    op(RET, ALLOW)
    op(LD_ABS, ARG0)
    op(JSET, CLONE_NEW, jump(deny_at + 1), 0)
    op(RET, ALLOW)
    op(RET, DENY)
    op(RET, NOSYS)
    assert len(code) == size and all(0 <= jt < 256 and 0 <= jf < 256 for _, jt, jf, _ in code)
    return b"".join(struct.pack("<HBBI", kind, jt, jf, k) for kind, jt, jf, k in code)
