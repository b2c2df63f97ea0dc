"""What `edgekd bench` prints: the results table, the per-op views of profiled models, the MLPerf headline."""

from __future__ import annotations

from typing import Any

from edgekd import console


def mlperf_figures(result: Any, config: Any) -> dict[str, Any]:
    """The MLPerf single-stream figures of one result: p90 (the headline), runs, and the rule each runner
    process was held to (the runner stops only once both floors are reached)."""
    summary = result.summary()
    return {
        "headline": "p90",
        "p90_ms": summary["p90_ms"],
        "runs": summary.get("runs") or result.stats.n,
        "repeats": config.repeats,
        "rule": {"min_runs": config.min_runs, "min_seconds": config.duration_s},
    }


def print_mlperf(results: list[Any], config: Any) -> None:
    for result in results:
        figures = mlperf_figures(result, config)
        p90 = "n/a (the tool reports no p90)" if figures["p90_ms"] is None else f"{num(figures['p90_ms'])} ms"
        console.say(
            f"[bold]MLPerf single-stream[/] {result.artifact} on {result.target}: p90 {p90} over "
            f"{figures['runs']} runs ({config.repeats} repeat(s), each ≥ {config.min_runs} runs and "
            f"≥ {config.duration_s:g} s)"
        )


def print_results(results: list[Any], run_id: str | None) -> None:
    from rich.table import Table

    unit, per_ms = ("µs", 1000.0) if max(r.stats.center_ns for r in results) < 1e6 else ("ms", 1.0)
    table = Table(title=f"bench on {results[0].target}" + (f" (history run {run_id})" if run_id else ""))
    for column in ("model", "runtime", f"p50 {unit} [95% CI]", "p90", "p99", "RSS MiB (model)", "J/inference"):
        table.add_column(column, justify="left" if column in ("model", "runtime") else "right")
    for result in results:
        s = result.summary()
        energy = (
            f"{s['energy_j_per_inference']:.3g} ± {s['energy_uncertainty_j']:.2g}"
            if s["energy_j_per_inference"] is not None
            else "n/a"
        )
        low, high = s["ci95_median_ms"] or (None, None)
        p50, p90, p99, low, high = (
            None if v is None else per_ms * v for v in (s["p50_ms"], s["p90_ms"], s["p99_ms"], low, high)
        )
        middle = (
            f"{num(p50)} [{num(low)}, {num(high)}]"
            if low is not None
            else f"{num(p50)} (mean {num(per_ms * s['mean_ms'])})"
        )
        table.add_row(
            s["artifact"],
            f"{s['runtime']} {s['runtime_version'] or ''}",
            middle,
            num(p90),
            num(p99),
            f"{mib(s['peak_rss_kb'])} ({mib(s['model_rss_kb'])})",
            energy,
        )
    console.say(table)
    for result in results:
        shapes = result.env.get("input_shapes") or {}
        if shapes:
            console.say(
                f"{result.artifact} inputs: "
                + ", ".join(f"{name} {'x'.join(str(d) for d in shape)}" for name, shape in shapes.items())
            )
        for warning in result.warnings:
            console.say(f"[yellow]warning[/] {result.artifact}: {warning}")
    if results[0].energy_unavailable:
        console.say(f"energy unavailable: {results[0].energy_unavailable}")
    print_profiles(results)


#: Slowest ops listed per profiled model after the bench table (`edgekd bench profile` lists more).
PROFILE_TOP = 5


def print_profiles(results: list[Any]) -> None:
    """The per-op views of every result that carries a profile (bench --profile), with the fallback verdict."""
    from edgekd.profile.placement import accelerator_fallback
    from edgekd.profile.printing import print_profile
    from edgekd.profile.schema import OpProfile

    for result in results:
        if not result.profile:
            continue
        profile = OpProfile.from_dict(result.profile)
        console.say("")
        print_profile(profile, top=PROFILE_TOP)
        for verdict in accelerator_fallback(profile):
            console.say(f"[yellow]{verdict.severity}: {verdict.code}[/] {verdict.message}")


def num(value: float | None) -> str:
    """Three significant digits without scientific notation (latencies span 0.1 µs to seconds)."""
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.1f}"


def ms(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
