"""On the device: the carried fp16 MiniLM back to fp32 safetensors (fp16 rounding of the real weights)."""

import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

d = Path(sys.argv[1])
sd = load_file(d / "model.fp16.safetensors")
save_file(
    {k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
    d / "model.safetensors",
    metadata={"format": "pt"},
)
(d / "model.fp16.safetensors").unlink()
