from distiltune.cli import main

main()
