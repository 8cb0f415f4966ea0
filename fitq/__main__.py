from fitq.cli import main

main()
