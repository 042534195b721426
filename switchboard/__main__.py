from switchboard.server.runtime.cli import main

raise SystemExit(main())
