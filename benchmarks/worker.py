"""One benchmark measurement, run in a fresh process by ``common.run_worker``.

    python worker.py TASK ARGS...

Imports first, then takes the peak RSS so far as the import baseline, times
the task, and prints one JSON line: ``seconds``, ``baseline_kib``, ``peak_kib``
(``VmHWM``, KiB). Runs under presetforge's environment or
keras-hub's (which has no presetforge), so it imports only what its task needs.
"""

import json
import resource
import shutil
import sys
import time
from pathlib import Path


def _peak_kib():
    """This process's peak RSS (KiB): ``VmHWM``, the high-water mark of its own address space.

    ``ru_maxrss`` is not used: Linux carries it over ``execve`` from the process
    that spawned us, so a child of a large parent would start at the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _copy_userspace(src, dst, chunk=1024 * 1024):
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(src, "rb", buffering=0) as fsrc, open(dst, "wb", buffering=0) as fdst:
        while n := fsrc.readinto(buffer):
            fdst.write(view[:n])


def _reset_peak():
    """Restart the kernel's high-water mark (``VmHWM``) at the current RSS, so the next phase's peak is its own."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _convert_and_check_in_phases(src, out, dtype, full_length_cap):
    """Convert, then check with the default probes (``full_length_cap`` aside), timing each phase:
    ``phases`` maps convert / weights / reference / ours to ``[seconds, peak RSS KiB]``."""
    import transformers.models.llama.modeling_llama  # noqa: F401  (imported by the check; not timed)

    from presetforge.checks import parity, report
    from presetforge.converters import convert

    phases, current = {}, {"name": "convert", "start": time.perf_counter()}

    def finish():
        phases[current["name"]] = [time.perf_counter() - current["start"], _peak_kib()]
        _reset_peak()
        current["start"] = time.perf_counter()

    def progress(phase, done, total):
        if phase != current["name"]:
            finish()
            current["name"] = phase
        print(f"{phase} {done}/{total} {time.perf_counter() - current['start']:.0f}s", file=sys.stderr, flush=True)

    convert(src, out, dtype=dtype)
    result = parity.check(out, src, full_length_cap=int(full_length_cap), progress=progress)
    finish()
    report.write(Path(out), result)
    return {"phases": phases, "passed": result.passed, "first_failure": result.first_failure,
            "worst_max_abs": result.worst_max_abs, "end_to_end_max_abs": result.end_to_end[-1].max_abs,
            "limit": max(s.limit for s in result.stages)}


def _keras_hub_route(src):
    """What keras-hub's own conversion checks need in one process: its backbone from the HF
    directory, and transformers' model beside it (from_pretrained in float32, eager)."""
    import keras_hub
    import torch
    import transformers

    backbone = keras_hub.models.Backbone.from_preset(src)
    reference = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    return {"parameters": int(backbone.count_params()), "reference_parameters": int(reference.num_parameters())}


def _sha256(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _sha256_all_cores():
    """Hash every weight file of a preset, one process per usable core, largest file first.

    The pool is started here, before the clock: the figure is the hashing alone,
    the floor of any load that verifies the weights' sha256 (one per file, as
    the manifest records them, so one file is hashed by one core).
    """
    import multiprocessing
    import os

    pool = multiprocessing.Pool(len(os.sched_getaffinity(0)))

    def hash_weights(preset):
        files = sorted(Path(preset).glob("model*.weights.h5"), key=lambda p: -p.stat().st_size)
        return pool.map(_sha256, files, chunksize=1)

    return hash_weights


def _imports(task):
    """The task's callable, after importing everything it needs (so imports are not timed)."""
    if task == "presetforge-convert-check":
        import presetforge.checks.parity  # noqa: F401

        return _convert_and_check_in_phases
    if task == "kerashub-parity-route":
        import keras_hub  # noqa: F401
        import transformers  # noqa: F401

        return _keras_hub_route
    if task == "presetforge-check":  # the gate as `presetforge check` runs it: report written into the preset
        import transformers  # noqa: F401  (imported by the check itself; not timed)

        from presetforge.checks import parity, report

        return lambda preset, reference: report.write(Path(preset), parity.check(preset, reference))
    if task.startswith("presetforge-"):
        import presetforge
        from presetforge.converters import convert

        if task == "presetforge-convert":
            return lambda src, out: convert(src, out, dtype="float32")
        return lambda path: presetforge.Backbone.from_preset(path)
    if task.startswith("kerashub-"):
        import keras_hub

        if task == "kerashub-convert":

            def convert_with_keras_hub(src, out):
                backbone = keras_hub.models.Backbone.from_preset(src)
                backbone.save_to_preset(out)

            return convert_with_keras_hub
        return lambda path: keras_hub.models.Backbone.from_preset(path)
    if task == "transformers-load":
        from transformers import GPT2Model

        return lambda path: GPT2Model.from_pretrained(path)
    if task == "sha256-all-cores":
        return _sha256_all_cores()
    if task == "copy":  # in the kernel (sendfile): the bytes never reach user space
        return shutil.copyfile
    if task == "copy-userspace":  # read() into a buffer, write() it out: what any converter must at least do
        return _copy_userspace
    raise SystemExit(f"unknown task {task!r}")


def main():
    task, *args = sys.argv[1:]
    fn = _imports(task)
    baseline = _peak_kib()
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    peak = _peak_kib()
    extra = result if isinstance(result, dict) else {}
    count_params = getattr(result, "count_params", None)
    if callable(count_params):
        extra["parameters"] = int(count_params())
    elif hasattr(result, "num_parameters"):
        extra["parameters"] = int(result.num_parameters())
    print(json.dumps({"task": task, "seconds": seconds, "baseline_kib": baseline, "peak_kib": peak, **extra}))


if __name__ == "__main__":
    main()
