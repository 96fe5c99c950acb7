"""What machine a benchmark ran on, for the RESULTS.md sections (shared by every benchmark)."""

import platform


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def gpu_description() -> str:
    """What GPU this machine has, detected: the NVIDIA GPUs' names, or that there is none
    (no driver loaded), so a report never claims "no GPU" by assumption."""
    import os
    import shutil
    import subprocess

    if not any(os.path.exists(path) for path in NVIDIA_DRIVER_FILES):
        return "no GPU (no NVIDIA driver loaded): every figure is from the CPU"
    names = []
    if shutil.which("nvidia-smi"):
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        )
        names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    found = ", ".join(names) if names else "an NVIDIA driver (nvidia-smi absent)"
    return f"GPU present: {found}; each section names the devices it used"
