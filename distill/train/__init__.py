"""The train stage: RUN/filtered → RUN/student, SFT with TRL on the student card (sftdata,
sfttokens, student, train_options, the accelerate launch and its configs)."""
