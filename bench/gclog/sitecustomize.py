"""Put this directory on a backend's ``PYTHONPATH`` to log its cyclic GC pauses.

``bench/loop_stall.py --gc-log`` does: every collection appends one line to the file
named by ``CACHIER_GC_LOG`` (wall time at its end, generation, pause in ms, the thread
that triggered it). A collection holds the GIL throughout, so its pause stalls both the
serving loop and the control thread. Not part of the service; bench use only.
"""

import gc
import os
import threading
import time

_path = os.environ.get("CACHIER_GC_LOG")
if _path:
    _out = open(_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    _started = [0.0]

    def _timed(phase: str, info: dict) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - _started[0]) * 1000
        thread = threading.current_thread().name
        _out.write(f"{time.time():.4f} {info['generation']} {pause_ms:.3f} {thread}\n")

    gc.callbacks.append(_timed)
