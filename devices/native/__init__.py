"""rebirth's native runner: ``executor_runner.cpp``, ExecuTorch's ``executor_runner`` command line on the
C++ runtime the executorch wheel ships, built for this host and for arm64-v8a phones (``build``)."""

from rebirth.devices.native.build import ARM64, Bundle, arm64_bundle, host_runner, require

__all__ = ["ARM64", "Bundle", "arm64_bundle", "host_runner", "require"]
