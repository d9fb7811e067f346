"""After supervisord dies (OOM, kill -9) its programs keep running, unsupervised: `status` shows
them for what they are, and `up`/`down` stop every one of them before a new supervisord starts.

A leftover is recognised by what it is (its binary with its data dir, config or venv folder in
its argv, working directory or open files: see `procfs.leftovers`), never by its process title.
"""

from __future__ import annotations

import os
import signal
import time

from ecoctl.runtimes.local.procfs import leftovers, port_holders
from ecoctl.runtimes.local.supervisor import alive


class Recovery:
    """Mixed into LocalRuntime."""

    def _supervised_pids(self) -> set[int]:
        pids = set()
        if self.supervisor.answers():
            pids.add(self.supervisor.proxy().getPID())  # asked over its socket: no pidfile to trust
            for info in self.supervisor.all_info().values():
                if info.get("pid"):
                    pids.add(info["pid"])
        return pids

    def leftovers(self) -> dict[int, tuple[object, int]]:
        """pid -> (program, parent pid) of this ecosystem's processes no supervisord of ours runs."""
        supervised = self._supervised_pids()
        found = leftovers(self.programs(), skip=supervised)
        # children of a supervised program (PostgreSQL's backends, uvicorn's workers) are its own
        return {pid: entry for pid, entry in found.items() if entry[1] not in supervised}

    def _stop_orphans(self, programs=None, timeout: float = 30.0) -> bool:
        """Stop every leftover: each top process (whose parent is not a leftover too) with its
        program's stop signal, then whatever is still alive after TIMEOUT with SIGKILL. Whether
        there was any."""
        found = self.leftovers()
        for pid, (program, parent) in sorted(found.items()):
            if parent in found:
                continue  # its parent's stop signal stops it
            self.progress(f"stopping {program.name} left running by an earlier supervisord (pid {pid})")
            try:
                os.kill(pid, getattr(signal, f"SIG{program.stopsignal}"))
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for pid in found:
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return bool(found)

    def unsupervised_detail(self, name: str, found=None) -> tuple[str, str]:
        """("running", why) when a leftover of NAME holds its port; ("", why) when another
        program holds it; ("", "") when the port is free."""
        port = self.port_of(name)[0]
        holders = port_holders(port)
        if not holders:
            return "", ""
        found = found() if found is not None else self.leftovers()
        ours = {pid for pid, (program, _) in found.items() if program.name == name}
        mine = [pid for pid in holders if pid in ours]
        if mine:
            return "running", (f"not supervised: pid {mine[0]} was left by a supervisord that died; "
                               "`ecoctl up` stops it and starts it again under supervision")
        return "", (f"port {port} is held by pid {holders[0]}, which is not this ecosystem's "
                    f"{name}: stop it or change {self.port_of(name)[1]}")
