from stxbf.cli.main import main

main()
