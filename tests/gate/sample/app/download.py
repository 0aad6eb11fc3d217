"""huggingface_hub downloads: a model repo (the encoder again) and a dataset repo (not a model)."""

from huggingface_hub import hf_hub_download, snapshot_download

config_path = hf_hub_download("acme/encoder", "config.json")
data_dir = snapshot_download(repo_id="acme/reviews", repo_type="dataset")
