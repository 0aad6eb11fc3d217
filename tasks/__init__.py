"""Celery tasks (tasks.app) around plain task functions (tasks.scan, tasks.discover) that take their context."""
