"""Running the server: settings, the command line, listening sockets, the serving loop of one
process and the supervisor of several, TLS, logging, loading the application, startup checks,
health endpoints, the access log and what all connections of a process share."""
