import sys

from distill.cli import main

# Spawned processes (vLLM's engine on a CPU, the verifier pool's forkserver) re-import the main
# module before anything else; that import installs distill/quiet.py there. Python skips a
# package's `__main__` given by name (`python -m distill`), so it is given by path instead, as
# the `distill` console script is.
sys.modules["__main__"].__spec__ = None

# guarded: vLLM and the verifier pool start processes that re-import the main module
if __name__ == "__main__":
    main()
