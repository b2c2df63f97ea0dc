"""Benchmark harness, written once against the Target protocol.

orchestrate (bench_artifacts) -> result (BenchResult) ; environment, noise, energy_accounting ;
history (SQLite) -> compare (significance test, CI exit code) ; doctor (Check). Statistics: edgekd.measure.
"""
