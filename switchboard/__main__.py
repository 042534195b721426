from switchboard.server.cli import main

raise SystemExit(main())
