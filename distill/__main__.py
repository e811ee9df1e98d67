from distill.cli import main

# guarded: vLLM and the verifier pool start processes that re-import the main module
if __name__ == "__main__":
    main()
