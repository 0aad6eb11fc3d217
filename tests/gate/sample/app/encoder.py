"""Sample codebase for the adoption gate tests: an encoder adopted by a module constant and by a revision kwarg."""

from transformers import AutoModel, AutoTokenizer

MODEL_ID = "acme/encoder"

tokenizer = AutoTokenizer.from_pretrained(MODEL_ID)
model = AutoModel.from_pretrained("acme/encoder", revision="main")
