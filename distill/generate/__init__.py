"""The generate stage: prompts → RUN/traces, through a teacher engine (backends/), with a
journal of finished answers and a data-parallel launcher."""
