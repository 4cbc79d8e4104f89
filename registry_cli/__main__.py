from registry_cli.cli.main import main

raise SystemExit(main())
