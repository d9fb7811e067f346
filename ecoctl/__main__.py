from ecoctl.cli import main

main()
