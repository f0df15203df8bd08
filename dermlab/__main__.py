from dermlab.entry import main

main()
