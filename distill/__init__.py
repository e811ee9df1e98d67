"""distill: reasoning distillation from a teacher's verified chains of thought."""

__version__ = "0.1.0"
