"""The eval stage: a model (RUN/student, a card, a hub id) → RUN/eval, samples on the benchmarks
through the generate engines, scored by the filter's verifiers."""
