"""The filter stage: RUN/traces (or converted published traces) → RUN/filtered, through the
verifiers (distill/verify/), dedup, decontamination, selection and the report."""
