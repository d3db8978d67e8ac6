"""Process-wide malloc settings for torch on a CPU.

torch's CPU tensors come straight from malloc. glibc returns large freed blocks to the kernel and maps
them afresh on the next request, so each pass of S31's tuning page-faults all its activations again
(about 17,000 faults a step on the project's CPU, a seventh of a batch's CPU time spent in the kernel;
docs/EXPERIMENTS.md). `keep_freed_memory` makes glibc keep freed memory for reuse instead;
`release_freed_memory` hands it back at a pause (a server worker between jobs).
"""

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
KEEP = 1 << 30  # blocks up to 1 GiB come from the reused heap, and up to 1 GiB of free heap is kept


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep and reuse freed memory (the process's resident size then stays at its
    peak). Idempotent; False and no change where malloc is not glibc's or refuses the setting."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt(3) documents 32 MiB as the threshold's upper limit; glibc 2.36 accepts 1 GiB. One that refuses it is
    # left as it is: a 32 MiB threshold faulted more than the defaults (docs/EXPERIMENTS.md)
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP) and mallopt(M_TRIM_THRESHOLD, KEEP))


def release_freed_memory() -> bool:
    """Give the kernel the freed memory malloc keeps (glibc's malloc_trim), so an idle process shrinks to what
    it holds; False where that is not glibc's."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True
