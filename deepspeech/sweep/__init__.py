"""Sweeps: a recipe's settings searched on Ray Tune, each trial an MLflow child run.

`config` reads a sweep file (`SweepConfig`: the base training config, the search space of
`space`, the metric, the search algorithm and the scheduler) and checks it before anything
starts; `runner` runs it on Ray Tune (Tune samples, schedules, stops and resumes the trials);
`trial` is what each trial runs (the ordinary training loop, into its own child run); `tracking`
keeps the MLflow side: the parent run, the children, the table and the plot. docs/sweeps.md.
"""
