from fraudctl.cli.app import main

main()
