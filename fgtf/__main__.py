from fgtf.cli import main

main()
