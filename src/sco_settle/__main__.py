from sco_settle.cli.main import main

main()
