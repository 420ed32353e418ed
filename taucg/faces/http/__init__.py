"""The daemon's HTTP face: metrics, the REST API and the dashboard on one
server. Import-free, so the daemon pays for none of it until
[daemon] http_address is set."""
