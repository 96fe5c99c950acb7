"""Importing this pins the process to one core and single-threaded BLAS/FFT, so a benchmark's
figures mean "per core" whatever the machine. Import it before NumPy (the thread counts are
read when NumPy loads), and name `PINNED` after the command in the section it prints."""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

PINNED = " (the script pins itself to one core and one BLAS thread)"
