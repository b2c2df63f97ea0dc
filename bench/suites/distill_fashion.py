"""Which distillation method helps a small student on Fashion-MNIST? Paired comparison against scratch.

The protocol of bench/suites/distill_methods.py (digits) on Fashion-MNIST read from Debian's
`dataset-fashion-mnist` IDX files through `[data] source = "idx"` (examples/fashion_mnist.toml), cut to fit
2 shared CPU cores: a seeded stratified subset of `LIMIT` images (`[data] limit`), split train / val / test as
that recipe does; the training split is cut in two stratified halves, the teacher (cnn w32 d3, 15x the
student's FLOPs) is trained once per seed on every label of half A, and the students (cnn w8 d3) learn on
half B with 10 % or 100 % of its labels: a teacher that never saw the students' samples. Methods (same
initial weights and optimiser budget per seed): scratch, Hinton, DKD, DIST, Hinton + logit standardisation,
consistent-view KD (Hinton, the teacher scoring the student's shifted + mixup views, alpha = 1).
Reported: test accuracy mean ± std over seeds and the paired difference method - scratch per seed with a
95 % t interval over seeds (n - 1 degrees of freedom, t = 4.30 at 3 seeds).
"""

from __future__ import annotations

import importlib.util
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = Path("/usr/share/datasets/fashion-mnist")
LIMIT = 8000  # images before the split: ~6,060 train (two halves of ~3,030), 800 val, 1,143 test
TEACHER = {"arch": "cnn", "width": 32, "depth": 3}
STUDENT = {"arch": "cnn", "width": 8, "depth": 3}
TEACHER_EPOCHS = 8
STUDENT_EPOCHS = 12


def _protocol() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_distill_methods", Path(__file__).with_name("distill_methods.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_seed(
    seed: int, fractions: list[float], limit: int, student_epochs: int, teacher_epochs: int
) -> tuple[dict[tuple[str, str], list[float]], list[str]]:
    """Test accuracies of teacher, scratch and every method for one seed under (labels, method), and timing lines."""
    import tempfile

    from edgekd.config.distill import ModelSpec, StudentConfig, TeacherConfig, TrainConfig
    from edgekd.data.datasets import load_dataset
    from edgekd.distill.api import prepare_teacher
    from edgekd.recipe import load_recipe

    protocol = _protocol()
    recipe, base = load_recipe(ROOT / "examples" / "fashion_mnist.toml")
    data_config = recipe.data.model_copy(update={"path": DATA, "limit": limit})
    teacher_config = TeacherConfig(model=ModelSpec(**TEACHER), train=TrainConfig(epochs=teacher_epochs, lr=3e-3))
    student = StudentConfig(model=ModelSpec(**STUDENT))
    train = {"epochs": student_epochs, "lr": 3e-3}
    accuracy: dict[tuple[str, str], list[float]] = {}
    timings = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        started = time.perf_counter()
        half_a, half_b = protocol.halves(load_dataset(data_config, seed, base), seed)
        teacher = prepare_teacher(teacher_config, half_a, seed=seed, out_dir=tmp / "teacherA", base_dir=base)
        timings.append(f"seed {seed}: teacher {time.perf_counter() - started:.0f} s")
        for fraction in fractions:
            started = time.perf_counter()
            labels = f"{fraction:.0%} of B, teacher on A"
            accuracy.setdefault((labels, "teacher"), []).append(teacher.config["test_accuracy"])
            protocol.each_method(accuracy, labels, teacher, student, train, half_b, fraction, seed=seed, tmp=tmp)
            timings.append(f"seed {seed}, {labels}: {time.perf_counter() - started:.0f} s")
            print(timings[-1], file=sys.stderr, flush=True)  # progress of a long run
    return accuracy, timings


def compare(
    seeds: list[int], fractions: list[float], limit: int, student_epochs: int, teacher_epochs: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the paired comparison and the timing lines: one forked process per seed (one torch thread each).

    Forked, so the suite module (loaded from its file by bench/run.py) needs no import by name in the children;
    torch is imported only inside them."""
    import multiprocessing
    import traceback
    from queue import Empty

    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def work(seed: int) -> None:
        try:
            queue.put((seed, one_seed(seed, fractions, limit, student_epochs, teacher_epochs), None))
        except BaseException:  # noqa: BLE001 - the parent re-raises it with the child's traceback
            queue.put((seed, None, traceback.format_exc()))

    processes = [context.Process(target=work, args=(seed,)) for seed in seeds]
    for process in processes:
        process.start()
    results: dict[int, tuple[Any, str | None]] = {}
    while len(results) < len(seeds):
        try:
            seed, outcome, error = queue.get(timeout=10)
            results[seed] = (outcome, error)
        except Empty:  # a child killed outright (out of memory, a signal) sends nothing: do not wait for it forever
            for seed, process in zip(seeds, processes, strict=True):
                if seed not in results and not process.is_alive() and queue.empty():
                    results[seed] = (None, f"the process ended with exit code {process.exitcode} and no result")
    for process in processes:
        process.join()
    failed = [f"seed {seed}:\n{error}" for seed, (_, error) in results.items() if error]
    if failed:
        raise RuntimeError("distill_fashion failed in " + "\n".join(failed))
    accuracy: dict[tuple[str, str], list[float]] = {}
    timings: list[str] = []
    for seed in seeds:  # seed order: summarise pairs each method with scratch seed by seed
        part, lines = results[seed][0]
        for key, values in part.items():
            accuracy.setdefault(key, []).extend(values)
        timings += lines
    return _protocol().summarise(accuracy), timings


def run(quick: bool) -> dict[str, Any]:
    started, load_before = time.perf_counter(), os.getloadavg()
    seeds = [0] if quick else [0, 1, 2]
    limit, student_epochs, teacher_epochs = (3000, 3, 2) if quick else (LIMIT, STUDENT_EPOCHS, TEACHER_EPOCHS)
    rows, timings = compare(seeds, [0.1, 1.0], limit, student_epochs, teacher_epochs)
    wall = time.perf_counter() - started
    cpu = sum(
        getattr(resource.getrusage(who), f)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for f in ("ru_utime", "ru_stime")
    )
    beyond = [f"{r['method']} at {r['labels']} ({r['minus_scratch_pt']:+.2f} pt, 95 % CI {r['ci95_low_pt']:+.2f} to "
              f"{r['ci95_high_pt']:+.2f})" for r in rows if r.get("excludes_zero")]  # fmt: skip
    verdict = ("Intervals that exclude zero: " + "; ".join(beyond) + ".") if beyond else (
        "No method's 95 % interval of the paired difference vs scratch excludes zero: none measurably helps here.")  # fmt: skip
    notes = (f"Fashion-MNIST (Debian dataset-fashion-mnist IDX files), a stratified subset of {limit} images, {len(seeds)} seeds; "
             f"teacher cnn w32 d3 ({teacher_epochs} epochs) trained once per seed on half A of the training split, students cnn w8 d3 "
             f"({student_epochs} epochs, AdamW lr 3e-3 cosine, batch 64, one torch thread) on half B; the seeds run in parallel, one process each. {verdict} Differences are method - "
             "scratch per seed (same split, initial weights and step budget), 95 % t interval over seeds with n - 1 dof. "
             f"Wall time {wall / 60:.1f} min ({cpu / 60:.1f} min of CPU time, all processes) on 2 shared cores, load average {load_before[0]:.1f} at the start and "
             f"{os.getloadavg()[0]:.1f} at the end (other helpers' work); " + "; ".join(timings) + ".")  # fmt: skip
    return {"rows": rows, "notes": notes}
