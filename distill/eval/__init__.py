"""The eval stage: a model (RUN/student, a card, a hub id) → RUN/eval, samples on the benchmarks
through the engines (distill/engines/), scored by the verifiers (distill/verify/) as the filter
scores a trace."""
