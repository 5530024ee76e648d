"""Access control (htpasswd, token, silly) and TLS, against real server processes."""
