"""CPU time of process trees, read from ``/proc`` (Linux), for the benchmarks.

Why: on a small machine the load generator, the server and PostgreSQL share the cores, so
requests per second alone cannot say which of them a change made cheaper. CPU seconds per
request, per process tree, can. ``utime + stime`` (proc(5), fields 14 and 15) counts every
thread of a process — the server's file threads and OpenSSL work included — and the kernel
time spent on its behalf.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _all() -> dict[int, tuple[int, float]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def tree_cpu(roots: Iterable[int], descend: bool = True) -> float:
    """CPU seconds of ``roots`` and (``descend``) all their living descendants."""
    table = _all()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        if descend:
            todo.extend(children.get(pid, ()))
    return total


def postmaster_pid(cluster_link: Path) -> int:
    """The postmaster of a cluster started by ``ops/dev/pg.sh`` (``DATA/pg-cluster``)."""
    return int((cluster_link / "data" / "postmaster.pid").read_text().split()[0])


@dataclass(frozen=True)
class CpuWindow:
    """CPU seconds per named process (tree) between :meth:`start` and :meth:`stop`.

    ``roots`` maps a name to its processes and whether their descendants count too (the
    load generator is one process whose children are the servers it measures).
    """

    roots: Mapping[str, tuple[tuple[int, ...], bool]]
    before: Mapping[str, float]

    @classmethod
    def start(cls, roots: Mapping[str, tuple[tuple[int, ...], bool]]) -> CpuWindow:
        return cls(roots, {name: tree_cpu(*spec) for name, spec in roots.items()})

    def stop(self) -> dict[str, float]:
        return {name: tree_cpu(*spec) - self.before[name] for name, spec in self.roots.items()}


__all__ = ["CpuWindow", "postmaster_pid", "tree_cpu"]
