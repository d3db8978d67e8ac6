from faceattr.cli import main

main()
