"""Processes and sockets on this machine, read from /proc: what Ray left running, what listens."""

import os
import time
from pathlib import Path

RAY_MARKERS = (
    "raylet",
    "gcs_server",
    "default_worker.py",
    "ray::",
    "log_monitor.py",
    "autoscaler/_private/monitor.py",
    "dashboard/dashboard.py",
    "dashboard/agent.py",
    "runtime_env/agent",
)


# Every process a test process starts, Ray's included (they inherit the environment), carries
# this test process's PID: under xdist two workers' searches run side by side, and each test
# counts only the Ray processes its own commands started.
OWNER_VARIABLE = "PYTEST_OWNER_PID"
os.environ[OWNER_VARIABLE] = str(os.getpid())
OWNER_ENTRY = f"{OWNER_VARIABLE}={os.getpid()}".encode()


def ray_processes() -> set[int]:
    """PIDs of running Ray processes that this test process's commands started."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = (
                    Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                if not any(marker in command for marker in RAY_MARKERS):
                    continue
                if OWNER_ENTRY in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    pids.add(int(entry))
            except OSError:
                continue
    return pids


def wait_for_no_new_ray_processes(before: set[int], timeout: float = 30.0) -> set[int]:
    deadline = time.time() + timeout
    while (left := ray_processes() - before) and time.time() < deadline:
        time.sleep(0.5)
    return left


def process_tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    return tree


def listening_ports(pids: set[int]) -> set[int]:
    """Ports of the TCP sockets in LISTEN state held by `pids` (from /proc/net/tcp{,6})."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# What a worker process that aborted prints (Ray's C++ signal handler, glibc, CPython): a run
# whose trials all finished must still not show any of it to the user.
CRASH_SIGNS = ("SIGABRT", "SIGSEGV", "Stack trace", "Fatal Python error", "core dumped")


def assert_no_crash_output(result) -> None:
    """Fail when a finished run's output shows a process crashing (e.g. at interpreter exit)."""
    output = (result.stdout or "") + (result.stderr or "")
    for sign in CRASH_SIGNS:
        assert sign not in output, (
            f"the run printed {sign!r}:\n" + output[max(0, output.find(sign) - 1500) :][:3000]
        )
