from dermlab.cli import main

main()
