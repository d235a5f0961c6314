from distiltune.cli import main

# Guarded: worker processes started with multiprocessing's "spawn" (distiltune serve --workers N) import this
# module again as __mp_main__, and must not run the CLI a second time.
if __name__ == "__main__":
    main()
