"""A pipeline adopting its model by keyword, pinned to a tag."""

from transformers import pipeline

classifier = pipeline("text-classification", model="acme/classifier", revision="v1")
