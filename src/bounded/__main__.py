from bounded.cli.main import main

main()
