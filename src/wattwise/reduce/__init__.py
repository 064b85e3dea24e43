"""Reduce: make a user's PyTorch model cheaper to run, and measure what each variant saves and costs.

Needs the ``reduce`` extra (``pip install 'wattwise[reduce]'``): torch, torchao, onnx, onnxruntime. Importing this
package without them raises one ConfigError that says what to install.
"""

from __future__ import annotations

from wattwise.errors import ConfigError


def require_torch() -> None:
    """Fail with the install line when the reduce extra is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError(
            "wattwise optimize needs PyTorch and friends: pip install 'wattwise[reduce]' "
            "(torch==2.13.0 takes the local CPU wheel)"
        ) from None
