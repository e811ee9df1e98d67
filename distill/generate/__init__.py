"""The generate stage: prompts → RUN/traces, through a teacher engine (distill/engines/, with its
journal of finished answers and shard writer), and a data-parallel launcher."""
